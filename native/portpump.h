/* The port pump: one C thread that sends serial work packets when each stick's nonce range ends
 * and reads what the sticks answered, so the Python host wakes a few times a second per stick
 * instead of once per range (docs/architecture.md, "Host cost"; docs/icarus.md §A5.3).
 *
 * It knows no protocol: a packet is bytes the driver encoded, a read is bytes with the time they
 * were read. The driver frames and checks them. Everything it does is told back as records, in
 * the order it happened, for the driver to collect: WRITE (packet seq, time just before write(2)),
 * READ (bytes, when read, and whether they were read as they came or at the range's end), ERROR.
 * The pump tells its host that a port has records by one byte on a pipe (pump_notify_fd) and
 * the port's id in pump_ready.
 */
#ifndef PORTPUMP_H
#define PORTPUMP_H

#include <stdint.h>

enum { PUMP_WRITE = 1, PUMP_READ = 2, PUMP_ERROR = 3 };
enum { PUMP_ERR_READ = 1, PUMP_ERR_GONE = 2, PUMP_ERR_WRITE = 3, PUMP_ERR_WRITE_FULL = 4 };
enum { PUMP_PACKET_MAX = 128, PUMP_QUEUE_MAX = 8 };

typedef struct {
    int32_t kind;     /* PUMP_WRITE, PUMP_READ, PUMP_ERROR */
    int32_t detail;   /* READ: 1 read as it came (port watched), 0 at the range's end; ERROR: PUMP_ERR_*; */
    int32_t err;      /* ERROR: errno (0 for a port that said "readable" and gave no byte) */
    uint32_t length;  /* READ: bytes at offset in the data buffer */
    uint32_t offset;
    uint32_t pad;
    uint64_t seq;     /* WRITE: the packet's seq */
    int64_t t_ns;     /* CLOCK_MONOTONIC (time.monotonic's clock on Linux) */
} pump_record;

typedef struct pump pump;

pump *pump_new(void);                      /* NULL when the thread or pipe can't be made (errno) */
void pump_free(pump *p);                   /* stops the thread; every port must be removed first */
int pump_notify_fd(pump *p);               /* readable when some port has records */
int64_t pump_now_ns(void);

/* A port: its fd (non-blocking), the range time and whether replies are read as they come. */
int pump_add(pump *p, int fd, int64_t range_ns, int watch);   /* the port's id, -1 when full */
void pump_remove(pump *p, int id);         /* reads what the port holds first: collect after */
void pump_set(pump *p, int id, int64_t range_ns, int watch);
/* Queue a packet for the next range end; 0 when the queue is full (PUMP_QUEUE_MAX). */
int pump_queue(pump *p, int id, const uint8_t *packet, uint32_t length, uint64_t seq);
/* Drop the queued packets (their seqs into flushed, count returned) and send this one now,
 * after reading what the port holds (a clean job, a stick that stopped at its first find). */
int pump_restart(pump *p, int id, const uint8_t *packet, uint32_t length, uint64_t seq,
                 uint64_t *flushed, int cap);
int pump_queued(pump *p, int id);
/* Ports with records (ids into out); clears the notify pipe. */
int pump_ready(pump *p, int32_t *out, int cap);
/* Move a port's records and bytes out: returns the record count; *data_len the bytes. */
int pump_collect(pump *p, int id, pump_record *records, int cap, uint8_t *data, uint32_t data_cap,
                 uint32_t *data_len);

#endif
