/*
 * test_stats.c - the shared-memory segment: layout, create/attach, stale and
 * live segments, and readers that race a writer and the master's fold.
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "run_suite.h"
#include "stats.h"

static char name[64];

static void make_name(void)
{
    snprintf(name, sizeof name, "/wsechod-unit-%d", (int)getpid());
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(layout)
{
    ck_assert_uint_eq(sizeof(struct wse_stats_slot) % WSE_CACHE_LINE, 0);
    ck_assert_uint_eq(sizeof(struct wse_stats_header) % WSE_CACHE_LINE, 0);
    ck_assert_uint_eq(__builtin_offsetof(struct wse_stats_slot, c) % 8, 0);
    ck_assert_str_eq(wse_stat_prom[WSE_STAT_msgs_in_text], "wsechod_messages_received_total");
    ck_assert_str_eq(wse_stat_labels[WSE_STAT_msgs_in_text], "type=\"text\"");
    ck_assert_str_eq(wse_stat_field[WSE_STAT_conn_open], "conn_open");
    ck_assert(wse_stat_is_gauge[WSE_STAT_conn_open]);
    ck_assert(!wse_stat_is_gauge[WSE_STAT_conn_accepted]);
}
END_TEST

START_TEST(default_names)
{
    char out[64];
    wse_stats_default_name(out, sizeof out, "", 8000);
    ck_assert_str_eq(out, "/wsechod.8000");
    wse_stats_default_name(out, sizeof out, "mine", 8000);
    ck_assert_str_eq(out, "/mine");
    wse_stats_default_name(out, sizeof out, "/mine", 1);
    ck_assert_str_eq(out, "/mine");
}
END_TEST

START_TEST(create_attach_close)
{
    struct wse_stats w, r;
    char err[256];

    make_name();
    ck_assert_int_eq(wse_stats_create(&w, name, 8, 2, err, sizeof err), 0);
    ck_assert_int_eq(w.hdr->master_pid, getpid());
    ck_assert_int_eq(wse_stats_free_slot(&w), 0);
    wse_stats_slot_set(&w.slots[0], 1234, 0, 1, WSE_SLOT_RUNNING);
    ck_assert_int_eq(wse_stats_free_slot(&w), 1);
    wse_stat_add(&w.slots[0], WSE_STAT_msgs_in_text, 5);

    ck_assert_int_eq(wse_stats_attach(&r, name, err, sizeof err), 0);
    ck_assert_uint_eq(r.nslots, 8);
    struct wse_stats_copy snap;
    ck_assert_int_eq(wse_stats_copy_init(&snap, &r), 0);
    ck_assert_int_eq(wse_stats_snapshot(&r, &snap, err, sizeof err), 0);
    ck_assert(snap.slot_ok[0] && snap.totals_ok);
    ck_assert_int_eq(snap.slots[0].pid, 1234);
    ck_assert_int_eq(snap.slots[0].state, WSE_SLOT_RUNNING);
    ck_assert_uint_eq(snap.totals[WSE_STAT_msgs_in_text], 5);
    ck_assert_int_eq(snap.hdr.master_pid, getpid());
    wse_stats_copy_free(&snap);
    wse_stats_close(&r);

    /* A process merely named wsechod (here a shell whose argv says so) is
     * no master of the segment: it does not map it.  It used to be taken
     * for one, and a fake header naming it blocked every start.  (A real
     * second master is refused: tests/integration/test_stats.py.) */
    struct wse_stats other;
    int pipefd[2], execd[2];
    char c;
    ck_assert_int_eq(pipe(pipefd), 0);
    /* A close-on-exec pipe: its EOF is the event "the child has exec'd". */
    ck_assert_int_eq(pipe2(execd, O_CLOEXEC), 0);
    pid_t owner = fork();
    if (owner == 0) {
        close(pipefd[1]);
        close(execd[0]);
        dup2(pipefd[0], 0);
        execl("/bin/sh", "wsechod", "-c", "read x", "wsechod", (char *)NULL);
        _exit(127);
    }
    close(pipefd[0]);
    close(execd[1]);
    ck_assert_int_eq(read(execd[0], &c, 1), 0);
    close(execd[0]);
    w.hdr->master_pid = owner;
    ck_assert_int_ne(wse_stats_check_master(name, owner, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "not the running wsechod master"));
    ck_assert_int_eq(wse_stats_create(&other, name, 8, 2, err, sizeof err), 0);
    ck_assert_int_eq(other.hdr->master_pid, getpid());
    close(pipefd[1]);           /* the owner's read ends, it exits */
    waitpid(owner, NULL, 0);
    wse_stats_close(&other);    /* unlinks the name: w's segment was replaced */
    w.owner = false;

    wse_stats_close(&w);
    ck_assert_int_eq(wse_stats_attach(&r, name, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no stats segment"));
}
END_TEST

/* The reader says which field of another layout differs: "another layout
 * (version 1, this reader knows version 1)" told nothing. */
START_TEST(another_layout_names_what_differs)
{
    struct wse_stats w, r;
    char err[512], want[256];

    make_name();
    ck_assert_int_eq(wse_stats_create(&w, name, 2, 2, err, sizeof err), 0);

    w.hdr->counter_count = WSE_STAT_COUNT + 6;
    ck_assert_int_eq(wse_stats_attach(&r, name, err, sizeof err), -1);
    snprintf(want, sizeof want, "stats segment %s has another layout: counter count %u, "
             "this reader knows %u", name, (unsigned)WSE_STAT_COUNT + 6, (unsigned)WSE_STAT_COUNT);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(r.hdr);

    /* Several differences: each is named. */
    w.hdr->slot_size = (uint32_t)sizeof(struct wse_stats_slot) * 2;
    w.hdr->version = WSE_STATS_VERSION + 1;
    ck_assert_int_eq(wse_stats_attach(&r, name, err, sizeof err), -1);
    snprintf(want, sizeof want, "version %u, this reader knows version %u; slot size %zu, "
             "this reader knows %zu; counter count %u", WSE_STATS_VERSION + 1, WSE_STATS_VERSION,
             sizeof(struct wse_stats_slot) * 2, sizeof(struct wse_stats_slot),
             (unsigned)WSE_STAT_COUNT + 6);
    ck_assert_msg(strstr(err, want), "%s", err);

    /* The layout matches but the segment is shorter than its slots need. */
    w.hdr->version = WSE_STATS_VERSION;
    w.hdr->slot_size = sizeof(struct wse_stats_slot);
    w.hdr->counter_count = WSE_STAT_COUNT;
    w.hdr->nslots = 1000;
    ck_assert_int_eq(wse_stats_attach(&r, name, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "too small for 1000 slots"), "%s", err);
    w.hdr->nslots = 2;
    ck_assert_int_eq(wse_stats_attach(&r, name, err, sizeof err), 0);
    wse_stats_close(&r);

    /* Not wsechod's at all: only the magic number is worth naming. */
    w.hdr->magic = 0x1234;
    ck_assert_int_eq(wse_stats_attach(&r, name, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "another layout: magic number 0x1234, not wsechod's "), "%s", err);
    w.hdr->magic = WSE_STATS_MAGIC;
    wse_stats_close(&w);
}
END_TEST

START_TEST(stale_segment_is_replaced)
{
    struct wse_stats w;
    char err[256];
    pid_t dead = fork();

    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    make_name();
    ck_assert_int_eq(wse_stats_create(&w, name, 4, 1, err, sizeof err), 0);
    wse_stat_add(&w.slots[0], WSE_STAT_conn_accepted, 7);
    w.hdr->master_pid = dead;           /* as if its master had crashed */
    w.owner = false;                    /* ... and left it behind */
    wse_stats_close(&w);

    ck_assert_int_eq(wse_stats_create(&w, name, 4, 1, err, sizeof err), 0);
    ck_assert_int_eq(w.hdr->master_pid, getpid());
    ck_assert_uint_eq(w.slots[0].c[WSE_STAT_conn_accepted], 0);
    wse_stats_close(&w);
}
END_TEST

/*
 * A writer adds 0x100000001 at full speed: every value it ever stores has
 * equal halves, so a torn read would show unequal ones.  The reader also
 * checks that it never goes backwards.
 */
/* A segment anyone may write is not wsechod's: neither replaced nor read. */
START_TEST(segment_writable_by_others_is_refused)
{
    struct wse_stats w, r;
    char err[256];

    make_name();
    ck_assert_int_eq(wse_stats_create(&w, name, 4, 1, err, sizeof err), 0);
    w.hdr->master_pid = 0;              /* no master: stale, were it not for its mode */
    int fd = shm_open(name, O_RDWR, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fchmod(fd, 0666), 0);
    close(fd);
    ck_assert_int_eq(wse_stats_attach(&r, name, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "writable by others"));
    struct wse_stats other;
    ck_assert_int_eq(wse_stats_create(&other, name, 4, 1, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "writable by others"));
    wse_stats_close(&w);
}
END_TEST

START_TEST(reader_sees_no_torn_or_backward_values)
{
    struct wse_stats w;
    char err[256];

    make_name();
    ck_assert_int_eq(wse_stats_create(&w, name, 2, 1, err, sizeof err), 0);
    wse_stats_slot_set(&w.slots[0], getpid(), 0, 1, WSE_SLOT_RUNNING);
    pid_t writer = fork();
    if (writer == 0) {
        double end = now() + 0.3;
        while (now() < end)
            for (int k = 0; k < 1000; k++)
                for (int i = 0; i < WSE_STAT_COUNT; i++)
                    wse_stat_add(&w.slots[0], (enum wse_stat_index)i, 0x100000001ULL);
        _exit(0);
    }
    struct wse_stats r;
    ck_assert_int_eq(wse_stats_attach(&r, name, err, sizeof err), 0);
    uint64_t prev[WSE_STAT_COUNT] = {0};
    struct wse_stats_copy snap;
    ck_assert_int_eq(wse_stats_copy_init(&snap, &r), 0);
    unsigned long reads = 0;
    int status;
    while (waitpid(writer, &status, WNOHANG) == 0) {
        ck_assert_int_eq(wse_stats_snapshot(&r, &snap, err, sizeof err), 0);
        ck_assert(snap.totals_ok && snap.slot_ok[0]);
        for (int i = 0; i < WSE_STAT_COUNT; i++) {
            uint64_t t = snap.totals[i];
            ck_assert_uint_eq(t >> 32, t & 0xFFFFFFFFu);
            ck_assert_uint_ge(t, prev[i]);
            prev[i] = t;
        }
        reads++;
    }
    ck_assert(WIFEXITED(status));
    ck_assert_uint_gt(prev[0], 0);
    ck_assert_uint_gt(reads, 100);
    wse_stats_copy_free(&snap);
    wse_stats_close(&r);
    wse_stats_close(&w);
}
END_TEST

/* The master folds exited workers into the retired totals while readers read. */
START_TEST(totals_never_go_back_across_folds)
{
    struct wse_stats w;
    char err[256];

    make_name();
    ck_assert_int_eq(wse_stats_create(&w, name, 2, 1, err, sizeof err), 0);
    pid_t reader = fork();
    if (reader == 0) {
        struct wse_stats r;
        struct wse_stats_copy snap;
        uint64_t prev = 0;
        if (wse_stats_attach(&r, name, err, sizeof err) < 0 || wse_stats_copy_init(&snap, &r) < 0)
            _exit(2);
        double end = now() + 0.3;
        while (now() < end) {
            if (wse_stats_snapshot(&r, &snap, err, sizeof err) < 0)
                _exit(4);
            if (!snap.totals_ok)
                continue;
            if (snap.totals[WSE_STAT_msgs_in_binary] < prev)
                _exit(1);
            prev = snap.totals[WSE_STAT_msgs_in_binary];
        }
        _exit(prev > 0 ? 0 : 3);
    }
    int status;
    uint64_t expect = 0;
    while (waitpid(reader, &status, WNOHANG) == 0) {
        /* A "worker" counts 1..100 in its slot, exits, and is folded. */
        wse_stats_slot_set(&w.slots[0], 1, 0, 1, WSE_SLOT_RUNNING);
        for (int k = 0; k < 100; k++)
            wse_stat_add(&w.slots[0], WSE_STAT_msgs_in_binary, 1);
        expect += 100;
        wse_stats_retire(&w, 0);
        wse_stats_slot_set(&w.slots[0], 0, -1, 0, WSE_SLOT_EMPTY);
        ck_assert_uint_eq(w.hdr->retired[WSE_STAT_msgs_in_binary], expect);
        ck_assert_uint_eq(w.slots[0].c[WSE_STAT_msgs_in_binary], 0);
    }
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    wse_stats_close(&w);
}
END_TEST

START_TEST(gauges_are_not_folded)
{
    struct wse_stats w;
    char err[256];

    make_name();
    ck_assert_int_eq(wse_stats_create(&w, name, 2, 1, err, sizeof err), 0);
    wse_stat_add(&w.slots[1], WSE_STAT_conn_open, 3);
    wse_stat_add(&w.slots[1], WSE_STAT_conn_accepted, 3);
    wse_stats_retire(&w, 1);
    ck_assert_uint_eq(w.hdr->retired[WSE_STAT_conn_open], 0);
    ck_assert_uint_eq(w.hdr->retired[WSE_STAT_conn_accepted], 3);
    wse_stats_close(&w);
}
END_TEST

/* ---- a reader against a segment rewritten under it ------------------------ */

/* A writer and an attached reader of a segment of nslots slots. */
static void writer_and_reader(struct wse_stats *w, struct wse_stats *r, struct wse_stats_copy *c,
                              unsigned nslots)
{
    char err[256];

    make_name();
    ck_assert_int_eq(wse_stats_create(w, name, nslots, 1, err, sizeof err), 0);
    wse_stats_slot_set(&w->slots[0], 1234, 0, 1, WSE_SLOT_RUNNING);
    wse_stat_add(&w->slots[0], WSE_STAT_conn_accepted, 7);
    ck_assert_int_eq(wse_stats_attach(r, name, err, sizeof err), 0);
    ck_assert_int_eq(wse_stats_copy_init(c, r), 0);
    ck_assert_int_eq(wse_stats_snapshot(r, c, err, sizeof err), 0);
    ck_assert(c->totals_ok && c->slot_ok[0]);
}

static void close_both(struct wse_stats *w, struct wse_stats *r, struct wse_stats_copy *c)
{
    wse_stats_copy_free(c);
    wse_stats_close(r);
    wse_stats_close(w);
}

/*
 * nslots raised after attach: the reader's arrays were sized at attach, so
 * reading the new count would overflow them (ASan) and the mapping.  It is
 * an error; a reader attaching afterwards is refused too.
 */
START_TEST(raised_nslots_is_an_error_not_an_overflow)
{
    struct wse_stats w, r, late;
    struct wse_stats_copy c;
    char err[256];

    writer_and_reader(&w, &r, &c, 4);
    w.hdr->nslots = 64;
    ck_assert_int_eq(wse_stats_snapshot(&r, &c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "changed its layout") && strstr(err, "4 slots at attach, 64 now"),
                  "%s", err);
    ck_assert_int_eq(wse_stats_attach(&late, name, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "too small for 64 slots"), "%s", err);
    w.hdr->nslots = WSE_STATS_MAX_SLOTS + 1;
    ck_assert_int_eq(wse_stats_attach(&late, name, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "another layout") && strstr(err, "slots, more than the"), "%s", err);
    w.hdr->nslots = 4;
    ck_assert_int_eq(wse_stats_snapshot(&r, &c, err, sizeof err), 0);
    /* The master's own loops use its own count, not the segment's. */
    w.hdr->nslots = 1u << 30;
    w.slots[1].state = WSE_SLOT_RUNNING;
    w.slots[2].state = WSE_SLOT_RUNNING;
    w.slots[3].state = WSE_SLOT_RUNNING;
    ck_assert_int_eq(wse_stats_free_slot(&w), -1);
    close_both(&w, &r, &c);
}
END_TEST

/* A segment truncated under a reader is a read error, not SIGBUS. */
START_TEST(truncated_segment_is_an_error_not_sigbus)
{
    struct wse_stats w, r;
    struct wse_stats_copy c;
    char err[256];

    writer_and_reader(&w, &r, &c, 64);
    int fd = shm_open(name, O_RDWR, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)sizeof(struct wse_stats_header)), 0);
    ck_assert_int_eq(wse_stats_snapshot(&r, &c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "shrank under the reader"), "%s", err);
    ck_assert_int_eq(ftruncate(fd, 0), 0);
    ck_assert_int_eq(wse_stats_snapshot(&r, &c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "shrank under the reader (0 of"), "%s", err);
    close(fd);
    close_both(&w, &r, &c);     /* unmapping touches none of the lost pages */
}
END_TEST

/* Time one snapshot; it must return, whatever the seqlocks say. */
static double timed_snapshot(struct wse_stats *r, struct wse_stats_copy *c)
{
    char err[256];
    double t0 = now();
    ck_assert_int_eq(wse_stats_snapshot(r, c, err, sizeof err), 0);
    return now() - t0;
}

/*
 * A worker killed between seq_begin and seq_end leaves its slot's seq odd:
 * readers give up on that slot after a bounded time and say so, the rest
 * still reads; the master's next write of the slot (reap, reuse) repairs it.
 */
START_TEST(odd_slot_seq_is_reported_not_spun_on)
{
    struct wse_stats w, r;
    struct wse_stats_copy c;

    writer_and_reader(&w, &r, &c, 4);
    wse_stats_slot_set(&w.slots[1], 99, 1, 1, WSE_SLOT_RUNNING);
    w.slots[0].seq |= 1;
    double took = timed_snapshot(&r, &c);
    ck_assert_msg(took < 5.0, "snapshot took %.1f s", took);
    ck_assert(!c.slot_ok[0]);
    ck_assert(c.slot_ok[1] && c.slots[1].pid == 99);
    ck_assert(c.totals_ok);
    ck_assert_uint_eq(c.slots[0].c[WSE_STAT_conn_accepted], 7);
    ck_assert_uint_eq(c.totals[WSE_STAT_conn_accepted], 7);

    /* What the master does when it reaps the worker. */
    wse_stats_retire(&w, 0);
    wse_stats_slot_set(&w.slots[0], 0, -1, 0, WSE_SLOT_EMPTY);
    ck_assert_uint_eq(w.slots[0].seq & 1, 0);
    timed_snapshot(&r, &c);
    ck_assert(c.slot_ok[0] && c.slots[0].state == WSE_SLOT_EMPTY);
    ck_assert_uint_eq(c.totals[WSE_STAT_conn_accepted], 7);

    /* So does the worker's own next state change, and the seq moved on. */
    w.slots[1].seq |= 1;
    uint32_t stale = w.slots[1].seq;
    wse_stats_slot_state(&w.slots[1], WSE_SLOT_DRAINING);
    ck_assert_uint_eq(w.slots[1].seq & 1, 0);
    ck_assert_uint_ne(w.slots[1].seq, stale + 1);
    timed_snapshot(&r, &c);
    ck_assert(c.slot_ok[1] && c.slots[1].state == WSE_SLOT_DRAINING);
    close_both(&w, &r, &c);
}
END_TEST

/* A master killed mid-fold (or anyone) leaves retired_seq odd: the same. */
START_TEST(odd_retired_seq_is_reported_not_spun_on)
{
    struct wse_stats w, r;
    struct wse_stats_copy c;

    writer_and_reader(&w, &r, &c, 4);
    w.hdr->retired_seq |= 1;
    double took = timed_snapshot(&r, &c);
    ck_assert_msg(took < 5.0, "snapshot took %.1f s", took);
    ck_assert(!c.totals_ok);
    ck_assert(c.slot_ok[0]);
    /* As read, still: the totals of what is there. */
    ck_assert_uint_eq(c.totals[WSE_STAT_conn_accepted], 7);
    wse_stats_retire(&w, 0);
    ck_assert_uint_eq(w.hdr->retired_seq & 1, 0);
    timed_snapshot(&r, &c);
    ck_assert(c.totals_ok);
    ck_assert_uint_eq(c.totals[WSE_STAT_conn_accepted], 7);
    ck_assert_uint_eq(c.hdr.retired[WSE_STAT_conn_accepted], 7);
    close_both(&w, &r, &c);
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, layout);
    tcase_add_test(tc, default_names);
    tcase_add_test(tc, create_attach_close);
    tcase_add_test(tc, another_layout_names_what_differs);
    tcase_add_test(tc, stale_segment_is_replaced);
    tcase_add_test(tc, segment_writable_by_others_is_refused);
    tcase_add_test(tc, reader_sees_no_torn_or_backward_values);
    tcase_add_test(tc, totals_never_go_back_across_folds);
    tcase_add_test(tc, gauges_are_not_folded);
    tcase_add_test(tc, raised_nslots_is_an_error_not_an_overflow);
    tcase_add_test(tc, truncated_segment_is_an_error_not_sigbus);
    tcase_add_test(tc, odd_slot_seq_is_reported_not_spun_on);
    tcase_add_test(tc, odd_retired_seq_is_reported_not_spun_on);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(stats_suite());
}
