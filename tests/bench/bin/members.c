/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Benchmark of issue 7: many remote members received encoded-only by one
 * matrixrtcsrc (decode=false, every pad to a fakesink) against the local
 * stack (tests/env/up), on SFU A. Targets, at 16 members: < 25 % of one
 * core and < 8 MB of memory per member.
 *
 * The receiver runs in this process and is measured from its own CPU time
 * (getrusage) and resident memory (/proc/self/statm) over a steady window,
 * with 0 members (the baseline), then 1, 4 and 16 (--steps). The
 * publishers run in child processes (this program with --publish): each
 * child encodes one VP8 and one Opus stream once and tees them to a
 * matrixrtcsink per member, each logged in as its own fresh user, so that
 * the publishers cost little and never encode per member.
 *
 * Usage: members [--steps 1,4,16] [--seconds S] [--width W --height H
 *                 --fps F --bitrate KBPS] */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib-unix.h>

#include "callutil.h"
#include "stackenv.h"

static gchar *steps_arg = NULL;
static gint seconds = 20, width = 640, height = 360, fps = 30, bitrate = 600;
static gint publish = 0;
static gchar *room_arg = NULL;
static const gchar *self_path;

/* ------------------------------------------------------------------ */
/* publishers (child process) */

static gboolean
quit_cb (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static gboolean
publisher_bus_cb (GstBus *bus, GstMessage *msg, gpointer data)
{
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    g_autoptr (GError) err = NULL;
    g_autofree gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    g_printerr ("publisher error from %s: %s\n", GST_OBJECT_NAME (msg->src),
        err->message);
    g_main_loop_quit (data);
  }
  return G_SOURCE_CONTINUE;
}

static int
run_publishers (void)
{
  g_autofree gchar *desc = g_strdup_printf (
      "videotestsrc is-live=true pattern=zone-plate kx2=20 ky2=20 kt=1 "
      "! video/x-raw,width=%d,height=%d,framerate=%d/1 ! vp8enc deadline=1 "
      "cpu-used=4 end-usage=cbr target-bitrate=%d keyframe-max-dist=%d "
      "! tee name=vt "
      "audiotestsrc is-live=true wave=ticks ! opusenc bitrate=32000 "
      "! tee name=at",
      width, height, fps, bitrate * 1000, fps * 10);
  g_autoptr (GError) error = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &error);
  GMainLoop *loop = g_main_loop_new (NULL, FALSE);
  GstElement *vt, *at;
  GstBus *bus;
  gint i;

  if (pipeline == NULL) {
    g_printerr ("publisher pipeline: %s\n", error->message);
    return 1;
  }
  vt = gst_bin_get_by_name (GST_BIN (pipeline), "vt");
  at = gst_bin_get_by_name (GST_BIN (pipeline), "at");
  for (i = 0; i < publish; i++) {
    g_autofree gchar *name
        = g_strdup_printf ("bench-pub-%08x-%d", g_random_int (), i);
    g_autofree gchar *password
        = g_strdup_printf ("pw-%08x%08x", g_random_int (), g_random_int ());
    g_autofree gchar *user = stack_env_register_user (name, password, &error);
    GstElement *sink, *vq, *aq;

    if (user == NULL) {
      g_printerr ("registering %s: %s\n", name, error->message);
      return 1;
    }
    sink = gst_element_factory_make ("matrixrtcsink", NULL);
    vq = gst_element_factory_make ("queue", NULL);
    aq = gst_element_factory_make ("queue", NULL);
    g_object_set (sink, "homeserver", stack_env_get ("MATRIXRTC_HS_URL"),
        "user-id", user, "password", password, "room", room_arg,
        "token-service", stack_env_get ("MATRIXRTC_JWT_A_URL"), "e2ee-mode",
        1 /* none */, "leave-delay", 3000, NULL);
    gst_bin_add_many (GST_BIN (pipeline), sink, vq, aq, NULL);
    /* A member that is not connected yet must not hold the others. */
    g_object_set (vq, "leaky", 2, NULL);
    g_object_set (aq, "leaky", 2, NULL);
    if (!gst_element_link_pads (vt, "src_%u", vq, "sink")
        || !gst_element_link_pads (vq, "src", sink, "video_%u")
        || !gst_element_link_pads (at, "src_%u", aq, "sink")
        || !gst_element_link_pads (aq, "src", sink, "audio_%u")) {
      g_printerr ("could not link publisher %d\n", i);
      return 1;
    }
  }
  gst_object_unref (vt);
  gst_object_unref (at);
  bus = gst_element_get_bus (pipeline);
  gst_bus_add_watch (bus, publisher_bus_cb, loop);
  gst_object_unref (bus);
  g_unix_signal_add (SIGTERM, quit_cb, loop);
  g_unix_signal_add (SIGINT, quit_cb, loop);
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING)
      == GST_STATE_CHANGE_FAILURE) {
    g_printerr ("publishers do not start\n");
    return 1;
  }
  g_main_loop_run (loop);
  /* Leaves the call cleanly (the delayed leave). */
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_main_loop_unref (loop);
  return 0;
}

/* ------------------------------------------------------------------ */
/* receiver (this process) */

typedef struct
{
  gint video_buffers;
  gint audio_buffers;
  guint64 bytes;
} MemberFlow;

typedef struct
{
  GstElement *pipeline;
  GstElement *src;
  GMutex lock;
  GHashTable *flows; /* user id -> MemberFlow */
} Receiver;

typedef struct
{
  Receiver *rx;
  gchar *user_id;
  gboolean video;
} ProbeData;

static void
probe_data_free (gpointer data)
{
  ProbeData *d = data;

  g_free (d->user_id);
  g_free (d);
}

static GstPadProbeReturn
count_probe (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  ProbeData *d = data;
  MemberFlow *f;

  g_mutex_lock (&d->rx->lock);
  f = g_hash_table_lookup (d->rx->flows, d->user_id);
  if (f == NULL) {
    f = g_new0 (MemberFlow, 1);
    g_hash_table_insert (d->rx->flows, g_strdup (d->user_id), f);
  }
  if (d->video)
    f->video_buffers++;
  else
    f->audio_buffers++;
  f->bytes += gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info));
  g_mutex_unlock (&d->rx->lock);
  return GST_PAD_PROBE_OK;
}

static void
rx_pad_added (GstElement *src, GstPad *pad, Receiver *rx)
{
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  GstPad *sinkpad;
  ProbeData *d = g_new0 (ProbeData, 1);
  g_autofree gchar *kind = NULL;

  g_object_get (pad, "user-id", &d->user_id, "kind", &kind, NULL);
  d->rx = rx;
  d->video = g_strcmp0 (kind, "video") == 0;
  g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
  gst_bin_add (GST_BIN (rx->pipeline), sink);
  gst_element_sync_state_with_parent (sink);
  sinkpad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (
      sinkpad, GST_PAD_PROBE_TYPE_BUFFER, count_probe, d, probe_data_free);
  if (gst_pad_link (pad, sinkpad) != GST_PAD_LINK_OK)
    g_printerr ("could not link %s\n", GST_PAD_NAME (pad));
  gst_object_unref (sinkpad);
}

static void
check_bus (Receiver *rx)
{
  GstBus *bus = gst_element_get_bus (rx->pipeline);
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR))) {
    g_autoptr (GError) err = NULL;
    g_autofree gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    fail ("receiver error from %s: %s (%s)", GST_OBJECT_NAME (msg->src),
        err->message, dbg);
  }
  gst_object_unref (bus);
}

/* Members whose video and audio both flow. */
static guint
flowing_members (Receiver *rx, GHashTable *last)
{
  GHashTableIter iter;
  gpointer key, value;
  guint n = 0;

  g_mutex_lock (&rx->lock);
  g_hash_table_iter_init (&iter, rx->flows);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    MemberFlow *f = value;
    MemberFlow *before = last ? g_hash_table_lookup (last, key) : NULL;

    if (f->video_buffers > (before ? before->video_buffers : 0) + 5
        && f->audio_buffers > (before ? before->audio_buffers : 0) + 5)
      n++;
  }
  g_mutex_unlock (&rx->lock);
  return n;
}

static GHashTable *
snapshot_flows (Receiver *rx)
{
  GHashTable *copy
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  GHashTableIter iter;
  gpointer key, value;

  g_mutex_lock (&rx->lock);
  g_hash_table_iter_init (&iter, rx->flows);
  while (g_hash_table_iter_next (&iter, &key, &value))
    g_hash_table_insert (
        copy, g_strdup (key), g_memdup2 (value, sizeof (MemberFlow)));
  g_mutex_unlock (&rx->lock);
  return copy;
}

static gint64
process_cpu_us (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return (gint64)ru.ru_utime.tv_sec * G_USEC_PER_SEC + ru.ru_utime.tv_usec
         + (gint64)ru.ru_stime.tv_sec * G_USEC_PER_SEC + ru.ru_stime.tv_usec;
}

/* CPU time of the publisher processes (/proc/PID/stat). */
static GArray *children;

static gint64
children_cpu_us (void)
{
  gint64 total = 0;
  guint i;

  for (i = 0; children != NULL && i < children->len; i++) {
    g_autofree gchar *path = g_strdup_printf (
        "/proc/%d/stat", (gint)g_array_index (children, GPid, i));
    g_autofree gchar *text = NULL;
    unsigned long utime = 0, stime = 0;
    const gchar *p;

    if (!g_file_get_contents (path, &text, NULL, NULL)
        || (p = strrchr (text, ')')) == NULL
        || sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &utime, &stime)
               != 2)
      continue;
    total += (gint64)(utime + stime) * G_USEC_PER_SEC / sysconf (_SC_CLK_TCK);
  }
  return total;
}

static gdouble
rss_mb (void)
{
  g_autofree gchar *text = NULL;
  unsigned long size = 0, resident = 0;

  if (!g_file_get_contents ("/proc/self/statm", &text, NULL, NULL)
      || sscanf (text, "%lu %lu", &size, &resident) != 2)
    return -1;
  return resident * (gdouble)sysconf (_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* Sleeps @secs while watching the bus. */
static void
wait_watching (Receiver *rx, gdouble secs)
{
  gint64 end = g_get_monotonic_time () + (gint64)(secs * G_USEC_PER_SEC);

  while (g_get_monotonic_time () < end) {
    check_bus (rx);
    g_usleep (100 * 1000);
  }
}

typedef struct
{
  guint members;
  gdouble cpu_percent; /* of one core */
  gdouble rss_mb;
  gdouble min_fps, min_audio_rate, mean_fps, kbps;
  gdouble publishers_cpu_percent;
  guint flowing;
} Sample;

/* A steady window: CPU, RSS and the slowest member's video rate. */
static Sample
measure (Receiver *rx, guint members)
{
  Sample s = { 0 };
  g_autoptr (GHashTable) before = NULL, after = NULL;
  gint64 cpu0, cpu1, pub0, pub1, t0, t1;
  GHashTableIter iter;
  gpointer key, value;

  before = snapshot_flows (rx);
  cpu0 = process_cpu_us ();
  pub0 = children_cpu_us ();
  t0 = g_get_monotonic_time ();
  wait_watching (rx, seconds);
  cpu1 = process_cpu_us ();
  pub1 = children_cpu_us ();
  t1 = g_get_monotonic_time ();
  after = snapshot_flows (rx);
  s.members = members;
  s.cpu_percent = 100.0 * (cpu1 - cpu0) / (gdouble)(t1 - t0);
  s.publishers_cpu_percent = 100.0 * (pub1 - pub0) / (gdouble)(t1 - t0);
  s.rss_mb = rss_mb ();
  s.min_fps = members ? G_MAXDOUBLE : 0;
  s.min_audio_rate = members ? G_MAXDOUBLE : 0;
  g_hash_table_iter_init (&iter, after);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    MemberFlow *a = value, *b = g_hash_table_lookup (before, key);
    gdouble secs = (t1 - t0) / (gdouble)G_USEC_PER_SEC;
    gdouble v = (a->video_buffers - (b ? b->video_buffers : 0)) / secs;
    gdouble au = (a->audio_buffers - (b ? b->audio_buffers : 0)) / secs;

    if (v > 0 && au > 0)
      s.flowing++;
    s.mean_fps += v / MAX (members, 1);
    s.kbps += (a->bytes - (b ? b->bytes : 0)) * 8 / 1000.0 / secs;
    s.min_fps = MIN (s.min_fps, v);
    s.min_audio_rate = MIN (s.min_audio_rate, au);
  }
  if (s.flowing < members) {
    s.min_fps = 0;
    s.min_audio_rate = 0;
  }
  return s;
}

/* CPU per member scaled to every member arriving at the full frame rate
 * (when the machine cannot feed them all, the receiver has less to do). */
static gdouble
full_rate_cpu (const Sample *x)
{
  gdouble rate = x->mean_fps / fps;

  return x->cpu_percent / x->members / CLAMP (rate, 0.05, 1.0);
}

static GPid
spawn_publishers (const gchar *room, guint n)
{
  g_autofree gchar *n_arg = g_strdup_printf ("%u", n);
  g_autofree gchar *w = g_strdup_printf ("%d", width);
  g_autofree gchar *h = g_strdup_printf ("%d", height);
  g_autofree gchar *f = g_strdup_printf ("%d", fps);
  g_autofree gchar *b = g_strdup_printf ("%d", bitrate);
  const gchar *argv[] = { self_path, "--publish", n_arg, "--room", room,
    "--width", w, "--height", h, "--fps", f, "--bitrate", b, NULL };
  g_autoptr (GError) error = NULL;
  GPid pid = 0;

  if (!g_spawn_async (NULL, (gchar **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
          NULL, NULL, &pid, &error))
    fail ("cannot start the publishers: %s", error->message);
  return pid;
}

GST_START_TEST (bench_members)
{
  g_auto (GStrv) steps = g_strsplit (steps_arg ? steps_arg : "1,4,16", ",", 0);
  g_autofree gchar *owner_password = NULL, *owner = NULL, *room = NULL;
  g_autofree gchar *rx_password = NULL, *rx_user = NULL;
  g_autoptr (GArray) samples = g_array_new (FALSE, FALSE, sizeof (Sample));
  Receiver rx = { 0 };
  Sample base, s;
  guint total = 0, i;

  children = g_array_new (FALSE, FALSE, sizeof (GPid));
  owner = call_register_user ("bench-owner", &owner_password);
  room = call_create_room (owner, owner_password);
  rx_user = call_register_user ("bench-rx", &rx_password);

  g_mutex_init (&rx.lock);
  rx.flows = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  rx.pipeline = gst_pipeline_new ("receiver");
  rx.src = gst_element_factory_make ("matrixrtcsrc", NULL);
  fail_unless (rx.src != NULL);
  g_object_set (rx.src, "homeserver", stack_env_get ("MATRIXRTC_HS_URL"),
      "user-id", rx_user, "password", rx_password, "room", room,
      "token-service", stack_env_get ("MATRIXRTC_JWT_A_URL"), "e2ee-mode",
      1 /* none */, "decode", FALSE, "leave-delay", 3000, NULL);
  gst_bin_add (GST_BIN (rx.pipeline), rx.src);
  g_signal_connect (rx.src, "pad-added", G_CALLBACK (rx_pad_added), &rx);
  fail_unless (gst_element_set_state (rx.pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);

  g_print ("receiver: matrixrtcsrc decode=false, pads to fakesinks; "
           "publishers: %dx%d@%d VP8 %d kbps + Opus 32 kbps, one "
           "matrixrtcsink and user per member in child processes; window "
           "%d s\n",
      width, height, fps, bitrate, seconds);
  /* The baseline: joined, connected, nobody else there. */
  wait_watching (&rx, 5);
  base = measure (&rx, 0);
  g_print ("  0 members: receiver %.1f %% of one core, RSS %.1f MB\n",
      base.cpu_percent, base.rss_mb);

  for (i = 0; steps[i] != NULL; i++) {
    guint want = (guint)atoi (steps[i]);
    GPid pid;
    gint64 end;

    if (want <= total)
      continue;
    pid = spawn_publishers (room, want - total);
    g_array_append_val (children, pid);
    total = want;
    /* Every member flowing, then a few seconds to settle. */
    end = g_get_monotonic_time () + (30 + 3 * total) * G_USEC_PER_SEC;
    while (g_get_monotonic_time () < end) {
      g_autoptr (GHashTable) last = snapshot_flows (&rx);

      wait_watching (&rx, 1);
      if (flowing_members (&rx, last) >= total)
        break;
    }
    {
      g_autoptr (GHashTable) last = snapshot_flows (&rx);

      wait_watching (&rx, 5);
      g_print ("  %u members: %u flowing, measuring %d s\n", total,
          flowing_members (&rx, last), seconds);
    }
    s = measure (&rx, total);
    g_array_append_val (samples, s);
  }

  g_print ("\nmembers  receiver CPU  CPU/member  (at full rate)  RSS growth  "
           "MB/member  received (kbit/s, mean fps)  slowest member (video "
           "fps, audio pkt/s)  publishers' CPU\n");
  for (i = 0; i < samples->len; i++) {
    Sample *x = &g_array_index (samples, Sample, i);
    gdouble growth = x->rss_mb - base.rss_mb;

    g_print ("%7u  %10.1f %%  %8.2f %%  %11.2f %%  %7.1f MB  %7.2f MB  %8.0f "
             "kbit/s, %4.1f fps  %.1f fps, %.1f pkt/s (%u of %u flowing)  "
             "%.0f %%\n",
        x->members, x->cpu_percent, x->cpu_percent / x->members,
        full_rate_cpu (x), growth, growth / x->members, x->kbps, x->mean_fps,
        x->min_fps, x->min_audio_rate, x->flowing, x->members,
        x->publishers_cpu_percent);
  }
  g_print ("(CPU of this process, receiving only, %% of one core; baseline "
           "with 0 members %.1f %%, %.1f MB; CPU/member counts the "
           "baseline in)\n",
      base.cpu_percent, base.rss_mb);
  if (samples->len > 0) {
    Sample *last = &g_array_index (samples, Sample, samples->len - 1);
    gdouble cpu = last->cpu_percent / last->members;
    gdouble mb = (last->rss_mb - base.rss_mb) / last->members;

    g_print ("at %u members: %.2f %% of one core per member (%.2f %% at the "
             "full rate; target < 25 %%): %s; %.2f MB per member (target "
             "< 8 MB): %s\n",
        last->members, cpu, full_rate_cpu (last),
        full_rate_cpu (last) < 25 ? "met" : "NOT met", mb,
        mb < 8 ? "met" : "NOT met");
  }

  for (i = 0; i < children->len; i++) {
    GPid pid = g_array_index (children, GPid, i);

    kill (pid, SIGTERM);
  }
  /* They leave the call (their delayed leaves) and end. */
  for (i = 0; i < children->len; i++) {
    waitpid (g_array_index (children, GPid, i), NULL, 0);
    g_spawn_close_pid (g_array_index (children, GPid, i));
  }
  g_clear_pointer (&children, g_array_unref);
  gst_element_set_state (rx.pipeline, GST_STATE_NULL);
  gst_object_unref (rx.pipeline);
  g_hash_table_unref (rx.flows);
  g_mutex_clear (&rx.lock);
}
GST_END_TEST;

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  GOptionEntry entries[] = {
    { "steps", 0, 0, G_OPTION_ARG_STRING, &steps_arg,
        "Member counts to measure at (default 1,4,16)", "N,N,..." },
    { "seconds", 0, 0, G_OPTION_ARG_INT, &seconds, "Measuring window (s)",
        "S" },
    { "width", 0, 0, G_OPTION_ARG_INT, &width, "Published width", "W" },
    { "height", 0, 0, G_OPTION_ARG_INT, &height, "Published height", "H" },
    { "fps", 0, 0, G_OPTION_ARG_INT, &fps, "Published frame rate", "F" },
    { "bitrate", 0, 0, G_OPTION_ARG_INT, &bitrate,
        "Published video bitrate (kbit/s)", "KBPS" },
    { "publish", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &publish,
        "(internal) run N publishers", "N" },
    { "room", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &room_arg,
        "(internal) the room of the publishers", "ROOM" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("");
  Suite *suite;
  TCase *tc;
  SRunner *runner;
  gint failed;

  self_path = argv[0];
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("%s\n", error->message);
    return 2;
  }
  if (!stack_env_load (&error)) {
    g_printerr (
        "the local stack is not up (tests/env/up): %s\n", error->message);
    return 1;
  }
  if (publish > 0) {
    gst_init (NULL, NULL);
    return run_publishers ();
  }
  gst_check_init (NULL, NULL);
  call_filter_known_warnings ();
  suite = suite_create ("members");
  tc = tcase_create ("bench");
  tcase_set_timeout (tc, 20 * 60);
  tcase_add_test (tc, bench_members);
  suite_add_tcase (suite, tc);
  runner = srunner_create (suite);
  srunner_set_fork_status (runner, CK_NOFORK);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
