/* The port pump (portpump.h): one thread, one poll(2) set, one lock.
 *
 * Why C: on the machines measured, a wake of a Python thread from idle costs 100-250 us of CPU
 * before any work (benchmarks/bench_wake_cost.py: cold caches), a C wake ~50 us. An Antminer U3
 * needs new work every 72 ms; the pump takes those 14 wakes a second and the Python host wakes
 * once per few ranges to check the nonces and hand over the next packets in one go.
 */
#define _GNU_SOURCE
#include "portpump.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PUMP_PORTS 256
#define PORT_DATA 4096
#define PORT_RECORDS 256
#define NEVER INT64_MAX

typedef struct {
    int fd;
    int watch;
    int failed;        /* an ERROR was recorded: the port is left alone until removed */
    int removed;       /* pump_remove ran: the slot goes with the next collect */
    int ready;         /* has records the host was told of */
    int full;          /* out of room for records: waits for the host's collect */
    int64_t range_ns;
    int64_t sent_ns;   /* the last write's time (0: none yet) */
    int64_t due_ns;    /* the next range end (NEVER: idle until a packet is queued) */
    uint8_t queue[PUMP_QUEUE_MAX][PUMP_PACKET_MAX];
    uint32_t queue_len[PUMP_QUEUE_MAX];
    uint64_t queue_seq[PUMP_QUEUE_MAX];
    int queue_head, queued;
    pump_record records[PORT_RECORDS];
    int nrecords;
    uint8_t data[PORT_DATA];
    uint32_t ndata;
} port;

struct pump {
    pthread_mutex_t lock;
    pthread_t thread;
    int wake_r, wake_w;      /* the host wakes the thread: a port or its queue changed */
    int notify_r, notify_w;  /* the thread wakes the host: some port has records */
    int signalled;
    int stop;
    port *ports[PUMP_PORTS];
};

int64_t pump_now_ns(void)
{
    struct timespec ts;
#ifdef __APPLE__
    clock_gettime(CLOCK_UPTIME_RAW, &ts);  /* what Python's time.monotonic reads on macOS */
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void poke(int fd)
{
    char c = 1;
    ssize_t r = write(fd, &c, 1);  /* a full pipe already says it: nothing lost */
    (void)r;
}

static void drain(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

static void mark_ready(pump *p, port *pt)
{
    pt->ready = 1;
    if (!p->signalled) {
        p->signalled = 1;
        poke(p->notify_w);
    }
}

static pump_record *add_record(port *pt, int kind)
{
    pump_record *r = &pt->records[pt->nrecords++];
    memset(r, 0, sizeof *r);
    r->kind = kind;
    return r;
}

static void fail(pump *p, port *pt, int detail, int err)
{
    pump_record *r = add_record(pt, PUMP_ERROR);  /* room is kept for it: see room_left */
    r->detail = detail;
    r->err = err;
    r->t_ns = pump_now_ns();
    pt->failed = 1;
    pt->due_ns = NEVER;
    mark_ready(p, pt);
}

static int room_left(pump *p, port *pt)
{
    /* Two records are kept back: a WRITE after a READ, and an ERROR. A port whose host does not
     * collect stops being read (the bytes wait in the kernel) until it does. */
    if (pt->nrecords >= PORT_RECORDS - 2 || pt->ndata >= PORT_DATA) {
        pt->full = 1;
        mark_ready(p, pt);
        return 0;
    }
    return 1;
}

/* Read what the port has. `watched`: poll said it is readable; else look with a zero poll first,
 * because a raw tty (VMIN=0) read says 0 both for "nothing yet" and for a port that is gone. */
static void read_port(pump *p, port *pt, int watched, short revents)
{
    if (pt->failed || !room_left(p, pt))
        return;
    if (!watched) {
        struct pollfd one = {pt->fd, POLLIN, 0};
        if (poll(&one, 1, 0) <= 0)
            return;
        revents = one.revents;
    }
    if (!(revents & POLLIN)) {
        if (revents & (POLLHUP | POLLERR | POLLNVAL))
            fail(p, pt, PUMP_ERR_GONE, 0);
        return;
    }
    ssize_t n = read(pt->fd, pt->data + pt->ndata, PORT_DATA - pt->ndata);
    int64_t now = pump_now_ns();
    if (n > 0) {
        pump_record *r = add_record(pt, PUMP_READ);
        r->detail = watched;
        r->offset = pt->ndata;
        r->length = (uint32_t)n;
        r->t_ns = now;
        pt->ndata += (uint32_t)n;
        if (watched)
            mark_ready(p, pt);
    } else if (n == 0) {
        fail(p, pt, PUMP_ERR_GONE, 0);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        fail(p, pt, errno == EIO ? PUMP_ERR_GONE : PUMP_ERR_READ, errno);
    }
}

static void write_next(pump *p, port *pt)
{
    int h = pt->queue_head;
    int64_t now = pump_now_ns();  /* taken just before the write, as bfgminer's icarus_job_start */
    ssize_t n = write(pt->fd, pt->queue[h], pt->queue_len[h]);
    if (n != (ssize_t)pt->queue_len[h]) {
        /* A 64-byte packet goes into the tty's kilobytes of buffer at once; one that doesn't is a
         * port that has stopped taking bytes (flow control stuck): not waited for here. */
        if (n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK)
            fail(p, pt, PUMP_ERR_WRITE_FULL, n >= 0 ? 0 : errno);
        else
            fail(p, pt, errno == EIO ? PUMP_ERR_GONE : PUMP_ERR_WRITE, errno);
        return;
    }
    pump_record *r = add_record(pt, PUMP_WRITE);
    r->seq = pt->queue_seq[h];
    r->t_ns = now;
    pt->queue_head = (h + 1) % PUMP_QUEUE_MAX;
    pt->queued--;
    pt->sent_ns = now;
    pt->due_ns = now + pt->range_ns;
    if (pt->queued <= 1)
        mark_ready(p, pt);  /* the host hands over the next packets now, a range ahead */
}

/* The range ended (or new work is wanted at once): what the stick found, then the next packet. */
static void range_end(pump *p, port *pt)
{
    read_port(p, pt, 0, 0);
    if (pt->failed)
        return;
    if (pt->full) {
        pt->due_ns = NEVER;  /* the range end waits for the host's collect (no busy loop) */
    } else if (pt->queued > 0) {
        write_next(p, pt);
    } else {
        pt->due_ns = NEVER;  /* idle until the host queues a packet */
        if (pt->nrecords)
            mark_ready(p, pt);
    }
}

static void *run(void *arg)
{
    pump *p = arg;
    struct pollfd fds[PUMP_PORTS + 1];
    int which[PUMP_PORTS + 1];
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        int64_t now = pump_now_ns(), next = NEVER;
        int n = 1;
        fds[0].fd = p->wake_r;
        fds[0].events = POLLIN;
        for (int i = 0; i < PUMP_PORTS; i++) {
            port *pt = p->ports[i];
            if (!pt || pt->removed || pt->failed)
                continue;
            if (pt->due_ns <= now)
                range_end(p, pt);
            if (pt->failed)
                continue;
            if (pt->due_ns < next)
                next = pt->due_ns;
            if (pt->watch && !pt->full) {
                fds[n].fd = pt->fd;
                fds[n].events = POLLIN;
                which[n++] = i;
            }
        }
        pthread_mutex_unlock(&p->lock);
        int64_t wait = next == NEVER ? -1 : next - pump_now_ns();
        if (wait < 0 && next != NEVER)
            wait = 0;
#ifdef __linux__
        struct timespec ts = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
        int got = ppoll(fds, (nfds_t)n, wait < 0 ? NULL : &ts, NULL);
#else
        int got = poll(fds, (nfds_t)n, wait < 0 ? -1 : (int)((wait + 999999) / 1000000));
#endif
        pthread_mutex_lock(&p->lock);
        if (got <= 0)
            continue;
        if (fds[0].revents)
            drain(p->wake_r);
        for (int k = 1; k < n; k++) {
            port *pt = p->ports[which[k]];
            /* The set was built before the lock was let go: a port removed (or re-added on the
             * same slot) meanwhile is skipped, its fd perhaps closed and reused. */
            if (fds[k].revents && pt && !pt->removed && !pt->failed && pt->watch && pt->fd == fds[k].fd)
                read_port(p, pt, 1, fds[k].revents);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int make_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

pump *pump_new(void)
{
    pump *p = calloc(1, sizeof *p);
    int wake[2], notify[2];
    if (!p)
        return NULL;
    if (make_pipe(wake) != 0) {
        free(p);
        return NULL;
    }
    if (make_pipe(notify) != 0) {
        close(wake[0]);
        close(wake[1]);
        free(p);
        return NULL;
    }
    p->wake_r = wake[0];
    p->wake_w = wake[1];
    p->notify_r = notify[0];
    p->notify_w = notify[1];
    pthread_mutex_init(&p->lock, NULL);
    int err = pthread_create(&p->thread, NULL, run, p);
    if (err) {
        close(wake[0]); close(wake[1]); close(notify[0]); close(notify[1]);
        pthread_mutex_destroy(&p->lock);
        free(p);
        errno = err;
        return NULL;
    }
    return p;
}

void pump_free(pump *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_mutex_unlock(&p->lock);
    poke(p->wake_w);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < PUMP_PORTS; i++)
        free(p->ports[i]);
    close(p->wake_r); close(p->wake_w); close(p->notify_r); close(p->notify_w);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int pump_notify_fd(pump *p) { return p->notify_r; }

static port *live(pump *p, int id)
{
    if (id < 0 || id >= PUMP_PORTS || !p->ports[id] || p->ports[id]->removed)
        return NULL;
    return p->ports[id];
}

int pump_add(pump *p, int fd, int64_t range_ns, int watch)
{
    port *pt = calloc(1, sizeof *pt);
    if (!pt)
        return -1;
    pt->fd = fd;
    pt->range_ns = range_ns;
    pt->watch = watch;
    pt->due_ns = NEVER;
    pthread_mutex_lock(&p->lock);
    int id = -1;
    for (int i = 0; i < PUMP_PORTS && id < 0; i++)
        if (!p->ports[i])
            id = i;
    if (id >= 0)
        p->ports[id] = pt;
    pthread_mutex_unlock(&p->lock);
    if (id < 0)
        free(pt);
    else
        poke(p->wake_w);
    return id;
}

void pump_remove(pump *p, int id)
{
    pthread_mutex_lock(&p->lock);
    port *pt = live(p, id);
    if (pt) {
        read_port(p, pt, 0, 0);  /* what the stick found is reported, not lost with the port */
        pt->removed = 1;
    }
    pthread_mutex_unlock(&p->lock);
    poke(p->wake_w);
}

void pump_set(pump *p, int id, int64_t range_ns, int watch)
{
    pthread_mutex_lock(&p->lock);
    port *pt = live(p, id);
    int changed = 0;
    if (pt && (pt->range_ns != range_ns || pt->watch != watch)) {
        changed = 1;
        pt->range_ns = range_ns;
        pt->watch = watch;
        if (pt->due_ns != NEVER && pt->due_ns != 0 && pt->sent_ns)
            pt->due_ns = pt->sent_ns + range_ns;
    }
    pthread_mutex_unlock(&p->lock);
    if (changed)
        poke(p->wake_w);
}

static void push(port *pt, const uint8_t *packet, uint32_t length, uint64_t seq)
{
    int at = (pt->queue_head + pt->queued) % PUMP_QUEUE_MAX;
    memcpy(pt->queue[at], packet, length);
    pt->queue_len[at] = length;
    pt->queue_seq[at] = seq;
    pt->queued++;
}

int pump_queue(pump *p, int id, const uint8_t *packet, uint32_t length, uint64_t seq)
{
    if (length > PUMP_PACKET_MAX)
        return 0;
    pthread_mutex_lock(&p->lock);
    port *pt = live(p, id);
    int ok = pt && !pt->failed && pt->queued < PUMP_QUEUE_MAX;
    int wake = 0;
    if (ok) {
        push(pt, packet, length, seq);
        if (pt->due_ns == NEVER) {  /* idle (nothing sent yet, or the host was late): send now */
            pt->due_ns = 0;
            wake = 1;
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (wake)
        poke(p->wake_w);
    return ok;
}

int pump_restart(pump *p, int id, const uint8_t *packet, uint32_t length, uint64_t seq,
                 uint64_t *flushed, int cap)
{
    int count = 0;
    if (length > PUMP_PACKET_MAX)
        return -1;
    pthread_mutex_lock(&p->lock);
    port *pt = live(p, id);
    if (pt && !pt->failed) {
        while (pt->queued > 0) {
            if (count < cap)
                flushed[count++] = pt->queue_seq[pt->queue_head];
            pt->queue_head = (pt->queue_head + 1) % PUMP_QUEUE_MAX;
            pt->queued--;
        }
        pt->queue_head = 0;
        push(pt, packet, length, seq);
        pt->due_ns = 0;
    }
    pthread_mutex_unlock(&p->lock);
    poke(p->wake_w);
    return count;
}

int pump_queued(pump *p, int id)
{
    pthread_mutex_lock(&p->lock);
    port *pt = live(p, id);
    int n = pt ? pt->queued : -1;
    pthread_mutex_unlock(&p->lock);
    return n;
}

int pump_ready(pump *p, int32_t *out, int cap)
{
    int n = 0;
    pthread_mutex_lock(&p->lock);
    drain(p->notify_r);
    p->signalled = 0;
    for (int i = 0; i < PUMP_PORTS; i++) {
        port *pt = p->ports[i];
        if (pt && pt->ready) {
            if (n == cap) {  /* more next time: the host is told again */
                mark_ready(p, pt);
                break;
            }
            pt->ready = 0;
            out[n++] = i;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return n;
}

int pump_collect(pump *p, int id, pump_record *records, int cap, uint8_t *data, uint32_t data_cap,
                 uint32_t *data_len)
{
    int n = 0, wake = 0;
    *data_len = 0;
    pthread_mutex_lock(&p->lock);
    port *pt = (id >= 0 && id < PUMP_PORTS) ? p->ports[id] : NULL;
    if (pt && cap >= PORT_RECORDS && data_cap >= PORT_DATA) {
        n = pt->nrecords;
        memcpy(records, pt->records, (size_t)n * sizeof *records);
        memcpy(data, pt->data, pt->ndata);
        *data_len = pt->ndata;
        pt->nrecords = 0;
        pt->ndata = 0;
        pt->ready = 0;
        if (pt->full) {  /* it stopped for want of room: read and sent again from now */
            pt->full = 0;
            if (pt->due_ns == NEVER && pt->queued > 0)
                pt->due_ns = 0;
            wake = 1;
        }
        if (pt->removed) {
            free(pt);
            p->ports[id] = NULL;
        }
    } else if (pt) {
        n = -1;
    }
    pthread_mutex_unlock(&p->lock);
    if (wake)
        poke(p->wake_w);
    return n;
}
