"""cffi builder for the port pump (native/portpump.c); setup.py names it in cffi_modules."""

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    enum { PUMP_WRITE = 1, PUMP_READ = 2, PUMP_ERROR = 3 };
    enum { PUMP_ERR_READ = 1, PUMP_ERR_GONE = 2, PUMP_ERR_WRITE = 3, PUMP_ERR_WRITE_FULL = 4 };
    enum { PUMP_PACKET_MAX = 128, PUMP_QUEUE_MAX = 8 };
    typedef struct {
        int32_t kind; int32_t detail; int32_t err; uint32_t length; uint32_t offset; uint32_t pad;
        uint64_t seq; int64_t t_ns;
    } pump_record;
    typedef struct pump pump;
    pump *pump_new(void);
    void pump_free(pump *p);
    int pump_notify_fd(pump *p);
    int64_t pump_now_ns(void);
    int pump_add(pump *p, int fd, int64_t range_ns, int watch);
    void pump_remove(pump *p, int id);
    void pump_set(pump *p, int id, int64_t range_ns, int watch);
    int pump_queue(pump *p, int id, const uint8_t *packet, uint32_t length, uint64_t seq);
    int pump_restart(pump *p, int id, const uint8_t *packet, uint32_t length, uint64_t seq,
                     uint64_t *flushed, int cap);
    int pump_queued(pump *p, int id);
    int pump_ready(pump *p, int32_t *out, int cap);
    int pump_collect(pump *p, int id, pump_record *records, int cap, uint8_t *data, uint32_t data_cap,
                     uint32_t *data_len);
    """
)
ffibuilder.set_source(
    "miner._portpump",
    '#include "portpump.h"',
    sources=["native/portpump.c"],
    include_dirs=["native"],
    extra_compile_args=["-O2", "-Wall"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
