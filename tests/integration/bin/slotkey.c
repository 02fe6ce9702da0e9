/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* The call elements in e2ee-mode=slot-shared (issue 8) against the local
 * stack (tests/env/up): real Synapse, a LiveKit SFU and its token service.
 * Every test registers fresh users and a fresh encrypted room with an open
 * slot; its moderators (power 100) are set before anyone joins. The first
 * moderator to join sends the slot's first key.
 *
 * Tests: three members see and decrypt each other (and a non-moderator's
 * rotation is refused with a clear warning); a rotation mid-call, and the
 * previous key's expiry after its grace period; two moderators rotating at
 * once converge; a receive-only member joining after a rotation decrypts
 * (key request); without a key nothing is sent; an unencrypted room is
 * refused.
 *
 * Decrypt failures are counted per receiving member and sender from the
 * matrixrtcframedec of each remote track (its "dropped" frames: missing
 * key or failed authentication), and the matrixrtc-decrypt-failure bus
 * messages are counted too (those are rate-limited, so they undercount). */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callutil.h"
#include "stackenv.h"

/* Frames a member may lose per sender (video) at a rotation. */
#define MAX_VIDEO_DROPS_AT_ROTATION 5
/* The same for audio (50 packets per second). */
#define MAX_AUDIO_DROPS_AT_ROTATION 25

static JsonObject *
hs_call (const gchar *method, const gchar *path, const gchar *token,
    const gchar *body)
{
  return call_http_json (method, path, token, body, 200);
}

/* An encrypted public room with an open slot m.call#ROOM, created by a
 * fresh owner; @moderators (NULL-terminated user ids) get power 100,
 * everyone else 0 (the slot event needs 50). */
static gchar *
create_slot_room_full (
    const gchar *const *moderators, gboolean with_slot, gchar **owner_token)
{
  g_autofree gchar *owner_pw = NULL;
  g_autofree gchar *owner = call_register_user ("slot-owner", &owner_pw);
  g_autofree gchar *login_body = g_strdup_printf (
      "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\","
      "\"user\":\"%s\"},\"password\":\"%s\"}",
      owner, owner_pw);
  g_autoptr (JsonObject) login = NULL, room = NULL;
  g_autoptr (GString) users = g_string_new ("");
  g_autofree gchar *body = NULL;
  guint i;

  for (i = 0; moderators != NULL && moderators[i] != NULL; i++)
    g_string_append_printf (
        users, "%s\"%s\":100", i > 0 ? "," : "", moderators[i]);
  login = hs_call ("POST", "/_matrix/client/v3/login", NULL, login_body);
  body = g_strdup_printf (
      "{\"preset\":\"public_chat\",\"power_level_content_override\":"
      "{\"events\":{\"org.matrix.msc3401.call.member\":0},\"users\":{%s}},"
      "\"initial_state\":[{\"type\":\"m.room.encryption\",\"state_key\":\"\","
      "\"content\":{\"algorithm\":\"m.megolm.v1.aes-sha2\"}}%s]}",
      users->str,
      with_slot ? ",{\"type\":\"org.matrix.msc4143.rtc.slot\",\"state_key\":"
                  "\"m.call#ROOM\",\"content\":{\"status\":\"open\","
                  "\"application\":{\"type\":\"m.call\"}}}"
                : "");
  room = hs_call ("POST", "/_matrix/client/v3/createRoom",
      json_object_get_string_member (login, "access_token"), body);
  if (owner_token != NULL)
    *owner_token
        = g_strdup (json_object_get_string_member (login, "access_token"));
  return g_strdup (json_object_get_string_member (room, "room_id"));
}

static gchar *
create_slot_room (const gchar *const *moderators)
{
  return create_slot_room_full (moderators, TRUE, NULL);
}

/* The key event the room's slot state names now. */
static gchar *
slot_key_in_state (const gchar *room_id, const gchar *token)
{
  g_autofree gchar *room = g_uri_escape_string (room_id, NULL, FALSE);
  g_autofree gchar *path = g_strdup_printf ("/_matrix/client/v3/rooms/%s/"
                                            "state/org.matrix.msc4143.rtc.slot/"
                                            "m.call%%23ROOM",
      room);
  g_autoptr (JsonObject) content = hs_call ("GET", path, token, NULL);
  JsonObject *app = json_object_get_object_member (content, "application");

  fail_unless (app != NULL);
  return g_strdup (json_object_get_string_member (app, "m.shared_key_event"));
}

/* ------------------------------------------------------------------ */
/* A call peer with what its bus says and where its decryptors are. */

typedef struct
{
  CallPeer *cp;
  gchar *user_id; /* for the bus handler, which outlives cp a little */
  GMutex lock;
  GHashTable *failure_messages; /* user id -> count */
  GPtrArray *warnings;          /* gchar * "domain:code message" */
  GPtrArray *statuses;          /* gchar * "status event-id" */
  GPtrArray *pads;              /* GstPad (src pads of remote members) */
} SlotPeer;

static void
on_sync_message (GstBus *bus, GstMessage *msg, SlotPeer *p)
{
  const GstStructure *s = gst_message_get_structure (msg);

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING) {
    GError *err = NULL;
    gchar *dbg = NULL;

    gst_message_parse_warning (msg, &err, &dbg);
    g_mutex_lock (&p->lock);
    g_ptr_array_add (p->warnings,
        g_strdup_printf ("%s:%d %s (%s)", g_quark_to_string (err->domain),
            err->code, err->message, dbg ? dbg : ""));
    g_mutex_unlock (&p->lock);
    g_print (
        "%s: warning: %s (%s)\n", p->user_id, err->message, dbg ? dbg : "");
    g_clear_error (&err);
    g_free (dbg);
    return;
  }
  if (GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ELEMENT || s == NULL)
    return;
  if (gst_structure_has_name (s, "matrixrtc-decrypt-failure")) {
    const gchar *user = gst_structure_get_string (s, "user-id");
    guint n;

    g_mutex_lock (&p->lock);
    n = GPOINTER_TO_UINT (g_hash_table_lookup (p->failure_messages, user));
    g_hash_table_insert (
        p->failure_messages, g_strdup (user), GUINT_TO_POINTER (n + 1));
    g_mutex_unlock (&p->lock);
  } else if (gst_structure_has_name (s, "matrixrtc-key-status")) {
    g_mutex_lock (&p->lock);
    g_ptr_array_add (p->statuses,
        g_strdup_printf ("%s %s", gst_structure_get_string (s, "status"),
            GST_STR_NULL (gst_structure_get_string (s, "event-id"))));
    g_mutex_unlock (&p->lock);
    /* never key bytes: only these fields */
    fail_unless_equals_int (gst_structure_n_fields (s),
        gst_structure_has_field (s, "event-id") ? 3 : 2);
    g_print ("%s: key status %s: %s\n", p->user_id,
        gst_structure_get_string (s, "status"),
        gst_structure_get_string (s, "message"));
  }
}

static void
on_pad_added (GstElement *call, GstPad *pad, SlotPeer *p)
{
  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC
      || !g_object_class_find_property (G_OBJECT_GET_CLASS (pad), "user-id"))
    return;
  g_mutex_lock (&p->lock);
  g_ptr_array_add (p->pads, gst_object_ref (pad));
  g_mutex_unlock (&p->lock);
}

static SlotPeer *
slot_peer_new (const gchar *factory, const gchar *prefix, gboolean publish)
{
  SlotPeer *p = g_new0 (SlotPeer, 1);
  GstBus *bus;

  /* the room is set once it exists (its power levels name our user) */
  p->cp = call_peer_new (factory, prefix, NULL,
      stack_env_get ("MATRIXRTC_JWT_A_URL"), publish, NULL);
  gst_util_set_object_arg (G_OBJECT (p->cp->call), "e2ee-mode", "slot-shared");
  g_mutex_init (&p->lock);
  p->user_id = g_strdup (p->cp->user_id);
  p->failure_messages
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  p->warnings = g_ptr_array_new_with_free_func (g_free);
  p->statuses = g_ptr_array_new_with_free_func (g_free);
  p->pads = g_ptr_array_new_with_free_func (gst_object_unref);
  bus = gst_element_get_bus (p->cp->pipeline);
  gst_bus_enable_sync_message_emission (bus);
  g_signal_connect (bus, "sync-message", G_CALLBACK (on_sync_message), p);
  gst_object_unref (bus);
  g_signal_connect (p->cp->call, "pad-added", G_CALLBACK (on_pad_added), p);
  return p;
}

static void
slot_peer_start (SlotPeer *p, const gchar *room_id)
{
  g_object_set (p->cp->call, "room", room_id, NULL);
  call_peer_start (p->cp);
}

static void
slot_peer_free (SlotPeer *p)
{
  GstBus *bus;

  if (p == NULL)
    return;
  /* Down to NULL first (every thread of the call ends there), then the
   * handlers go: none runs after that. */
  bus = gst_element_get_bus (p->cp->pipeline);
  call_peer_free (p->cp);
  g_signal_handlers_disconnect_by_data (bus, p);
  gst_bus_disable_sync_message_emission (bus);
  gst_object_unref (bus);
  g_hash_table_unref (p->failure_messages);
  g_ptr_array_unref (p->warnings);
  g_ptr_array_unref (p->statuses);
  g_ptr_array_unref (p->pads);
  g_mutex_clear (&p->lock);
  g_free (p->user_id);
  g_free (p);
}

/* The matrixrtcframedec upstream of a remote member's pad (a new ref). */
static GstElement *
framedec_of (GstPad *pad)
{
  GstPad *cur = gst_ghost_pad_get_target (GST_GHOST_PAD (pad));
  guint steps;

  for (steps = 0; cur != NULL && steps < 12; steps++) {
    GstElement *e = gst_pad_get_parent_element (cur);
    GstElementFactory *f = e ? gst_element_get_factory (e) : NULL;
    GstPad *sink, *peer;

    gst_object_unref (cur);
    cur = NULL;
    if (e == NULL)
      return NULL;
    if (f != NULL && g_str_equal (GST_OBJECT_NAME (f), "matrixrtcframedec"))
      return e;
    sink = gst_element_get_static_pad (e, "sink");
    gst_object_unref (e);
    if (sink == NULL)
      return NULL;
    peer = gst_pad_get_peer (sink);
    gst_object_unref (sink);
    cur = peer;
  }
  if (cur != NULL)
    gst_object_unref (cur);
  return NULL;
}

typedef struct
{
  guint64 video, audio; /* frames the decryptors dropped */
  guint64 video_frames, audio_frames;
} Drops;

/* Drops of @p's decryptors for the tracks of @sender. */
static Drops
drops_from (SlotPeer *p, const gchar *sender)
{
  Drops d = { 0 };
  guint i;

  g_mutex_lock (&p->lock);
  for (i = 0; i < p->pads->len; i++) {
    GstPad *pad = g_ptr_array_index (p->pads, i);
    g_autofree gchar *user = NULL, *kind = NULL;
    GstElement *dec;
    GstStructure *stats = NULL;
    guint64 dropped = 0, frames = 0;

    g_object_get (pad, "user-id", &user, "kind", &kind, NULL);
    if (g_strcmp0 (user, sender) != 0)
      continue;
    dec = framedec_of (pad);
    if (dec == NULL)
      continue;
    g_object_get (dec, "stats", &stats, NULL);
    gst_object_unref (dec);
    if (stats == NULL)
      continue;
    gst_structure_get_uint64 (stats, "dropped", &dropped);
    gst_structure_get_uint64 (stats, "frames", &frames);
    gst_structure_free (stats);
    if (g_strcmp0 (kind, "video") == 0) {
      d.video += dropped;
      d.video_frames += frames;
    } else {
      d.audio += dropped;
      d.audio_frames += frames;
    }
  }
  g_mutex_unlock (&p->lock);
  return d;
}

static guint
failure_messages (SlotPeer *p, const gchar *sender)
{
  guint n;

  g_mutex_lock (&p->lock);
  n = GPOINTER_TO_UINT (g_hash_table_lookup (p->failure_messages, sender));
  g_mutex_unlock (&p->lock);
  return n;
}

static gchar *
stats_string (SlotPeer *p, const gchar *field)
{
  GstStructure *stats = NULL;
  gchar *value;

  g_object_get (p->cp->call, "stats", &stats, NULL);
  fail_unless (stats != NULL);
  value = g_strdup (gst_structure_get_string (stats, field));
  gst_structure_free (stats);
  return value;
}

static gboolean
uses_key (SlotPeer *p, const gchar *event_id)
{
  g_autofree gchar *current = stats_string (p, "slot-key-event-id");

  return current != NULL
         && (event_id == NULL || g_str_equal (current, event_id));
}

static gboolean
sees (SlotPeer *p, SlotPeer *sender, gint frames)
{
  return call_peer_counts (p->cp, sender->cp->user_id).video_good >= frames;
}

/* Each of @peers (NULL-terminated) sees every publishing other one with
 * @more good frames than in @base (indexed [receiver * 8 + sender]). */
static gboolean
all_see (SlotPeer **peers, const gint *base, gint more)
{
  guint i, j;

  for (i = 0; peers[i] != NULL; i++) {
    if (g_str_has_suffix (G_OBJECT_TYPE_NAME (peers[i]->cp->call), "Sink"))
      continue;
    for (j = 0; peers[j] != NULL; j++) {
      if (i == j
          || g_str_has_suffix (G_OBJECT_TYPE_NAME (peers[j]->cp->call), "Src"))
        continue;
      if (!sees (peers[i], peers[j], (base ? base[i * 8 + j] : 0) + more))
        return FALSE;
    }
  }
  return TRUE;
}

static void
snapshot_good (SlotPeer **peers, gint *base)
{
  guint i, j;

  for (i = 0; peers[i] != NULL; i++)
    for (j = 0; peers[j] != NULL; j++)
      base[i * 8 + j]
          = i == j ? 0
                   : call_peer_counts (peers[i]->cp, peers[j]->cp->user_id)
                         .video_good;
}

static void
check_bus_all (SlotPeer **peers)
{
  guint i;

  for (i = 0; peers[i] != NULL; i++)
    call_check_bus (peers[i]->cp);
}

/* Waits for @cond while checking every bus for errors. */
#define SLOT_WAIT(cond, seconds, peers)                                        \
  G_STMT_START                                                                 \
  {                                                                            \
    gint64 _end = g_get_monotonic_time () + (seconds)*G_USEC_PER_SEC;          \
    while (!(cond) && g_get_monotonic_time () < _end) {                        \
      check_bus_all (peers);                                                   \
      g_usleep (100 * 1000);                                                   \
    }                                                                          \
  }                                                                            \
  G_STMT_END

static gboolean
all_use_key (SlotPeer **peers, const gchar *event_id)
{
  guint i;

  for (i = 0; peers[i] != NULL; i++)
    if (!uses_key (peers[i], event_id))
      return FALSE;
  return TRUE;
}

static gboolean
all_same_key (SlotPeer **peers)
{
  g_autofree gchar *first = stats_string (peers[0], "slot-key-event-id");
  guint i;

  if (first == NULL)
    return FALSE;
  for (i = 1; peers[i] != NULL; i++)
    if (!uses_key (peers[i], first))
      return FALSE;
  return TRUE;
}

/* Prints and returns the drops of every receiver from every sender. */
static void
snapshot_drops (SlotPeer **peers, Drops *out)
{
  guint i, j;

  for (i = 0; peers[i] != NULL; i++)
    for (j = 0; peers[j] != NULL; j++)
      out[i * 8 + j] = i == j ? (Drops){ 0 }
                              : drops_from (peers[i], peers[j]->cp->user_id);
}

/* Asserts that no receiver lost more than a few frames of any sender
 * between @before and now. */
static void
check_drops (SlotPeer **peers, const Drops *before, const gchar *what)
{
  Drops now[64];
  guint i, j;

  snapshot_drops (peers, now);
  for (i = 0; peers[i] != NULL; i++) {
    for (j = 0; peers[j] != NULL; j++) {
      guint64 v, a;

      if (i == j)
        continue;
      v = now[i * 8 + j].video - before[i * 8 + j].video;
      a = now[i * 8 + j].audio - before[i * 8 + j].audio;
      g_print ("%s: %s lost %" G_GUINT64_FORMAT " video and %" G_GUINT64_FORMAT
               " audio frames of %s (%" G_GUINT64_FORMAT " / %" G_GUINT64_FORMAT
               " decrypted in all; %u decrypt-failure messages in all)\n",
          what, peers[i]->cp->user_id, v, a, peers[j]->cp->user_id,
          now[i * 8 + j].video_frames, now[i * 8 + j].audio_frames,
          failure_messages (peers[i], peers[j]->cp->user_id));
      fail_unless (v <= MAX_VIDEO_DROPS_AT_ROTATION,
          "%s: %s lost %" G_GUINT64_FORMAT " video frames of %s", what,
          peers[i]->cp->user_id, v, peers[j]->cp->user_id);
      fail_unless (a <= MAX_AUDIO_DROPS_AT_ROTATION,
          "%s: %s lost %" G_GUINT64_FORMAT " audio frames of %s", what,
          peers[i]->cp->user_id, a, peers[j]->cp->user_id);
    }
  }
}

static void
print_stats (const gchar *who, const GstStructure *stats)
{
  g_autofree gchar *text = gst_structure_to_string (stats);

  g_print ("%s stats: %s\n", who, text);
}

static gchar *
rotate (SlotPeer *p)
{
  gchar *event_id = NULL;

  g_signal_emit_by_name (p->cp->call, "rotate-slot-key", &event_id);
  return event_id;
}

/* ------------------------------------------------------------------ */

/* Three members in slot-shared mode see and decrypt each other; a member
 * without the power level cannot rotate (a clear warning, nothing sent). */
GST_START_TEST (test_three_members)
{
  SlotPeer *a = slot_peer_new ("matrixrtcbin", "slot-a", TRUE);
  SlotPeer *b = slot_peer_new ("matrixrtcbin", "slot-b", TRUE);
  SlotPeer *c = slot_peer_new ("matrixrtcbin", "slot-c", TRUE);
  SlotPeer *peers[] = { a, b, c, NULL };
  const gchar *mods[] = { a->cp->user_id, NULL };
  g_autofree gchar *room = create_slot_room (mods);
  g_autofree gchar *key = NULL, *mode = NULL, *refused = NULL;
  g_autofree gchar *after = NULL;
  gint64 start = g_get_monotonic_time ();
  gboolean warned = FALSE;
  guint i;

  for (i = 0; peers[i] != NULL; i++)
    slot_peer_start (peers[i], room);
  SLOT_WAIT (all_see (peers, NULL, 15), 60, peers);
  g_print ("three members see each other after %" G_GINT64_FORMAT " ms\n",
      (g_get_monotonic_time () - start) / 1000);
  for (i = 0; peers[i] != NULL; i++) {
    guint j;

    for (j = 0; peers[j] != NULL; j++) {
      MemberCounts m;

      if (i == j)
        continue;
      m = call_peer_counts (peers[i]->cp, peers[j]->cp->user_id);
      g_print ("%s sees %s: %d frames (%d with the bars), %d audio\n",
          peers[i]->cp->user_id, peers[j]->cp->user_id, m.video_frames,
          m.video_good, m.audio_buffers);
    }
  }
  fail_unless (all_see (peers, NULL, 15), "the members do not see each other");
  fail_unless (all_same_key (peers));
  key = stats_string (a, "slot-key-event-id");
  mode = stats_string (b, "e2ee-mode");
  fail_unless_equals_string (mode, "slot-shared");
  for (i = 0; peers[i] != NULL; i++) {
    g_autofree gchar *status = stats_string (peers[i], "slot-key-status");
    GstStructure *stats = NULL;
    guint encrypted = 0;

    fail_unless_equals_string (status, "ready");
    g_object_get (peers[i]->cp->call, "stats", &stats, NULL);
    gst_structure_get_uint (stats, "remote-tracks-encrypted", &encrypted);
    print_stats (peers[i]->cp->user_id, stats);
    gst_structure_free (stats);
    /* video and audio of both others, encrypted on the wire */
    fail_unless_equals_int (encrypted, 4);
  }

  /* c is no moderator: a clear warning, no new key */
  refused = rotate (c);
  fail_unless (refused == NULL);
  g_mutex_lock (&c->lock);
  for (i = 0; i < c->warnings->len; i++) {
    const gchar *w = g_ptr_array_index (c->warnings, i);

    if (strstr (w, "lacks the power level") != NULL
        && g_str_has_prefix (w, "gst-resource-error-quark:"))
      warned = TRUE;
  }
  g_mutex_unlock (&c->lock);
  fail_unless (warned, "no power-level warning from the refused rotation");
  g_usleep (G_USEC_PER_SEC);
  after = stats_string (a, "slot-key-event-id");
  fail_unless_equals_string (after, key);

  for (i = 0; peers[i] != NULL; i++)
    slot_peer_free (peers[i]);
}

GST_END_TEST;

/* A moderator rotates mid-call: everyone switches to the new key and media
 * keeps flowing with at most a few frames lost per member. */
GST_START_TEST (test_rotation_mid_call)
{
  SlotPeer *a = slot_peer_new ("matrixrtcbin", "rot-a", TRUE);
  SlotPeer *b = slot_peer_new ("matrixrtcbin", "rot-b", TRUE);
  SlotPeer *c = slot_peer_new ("matrixrtcbin", "rot-c", TRUE);
  SlotPeer *peers[] = { a, b, c, NULL };
  const gchar *mods[] = { a->cp->user_id, NULL };
  g_autofree gchar *room = create_slot_room (mods);
  g_autofree gchar *old_key = NULL, *new_key = NULL;
  Drops before[64];
  gint base[64];
  gint64 t0;
  guint i;

  for (i = 0; peers[i] != NULL; i++)
    slot_peer_start (peers[i], room);
  SLOT_WAIT (all_see (peers, NULL, 15), 60, peers);
  fail_unless (all_see (peers, NULL, 15), "the members do not see each other");
  old_key = stats_string (a, "slot-key-event-id");
  /* steady state: a few seconds of media before the rotation */
  g_usleep (2 * G_USEC_PER_SEC);
  snapshot_drops (peers, before);
  snapshot_good (peers, base);

  t0 = g_get_monotonic_time ();
  new_key = rotate (a);
  fail_unless (new_key != NULL, "the moderator could not rotate");
  fail_if (g_str_equal (new_key, old_key));
  SLOT_WAIT (all_use_key (peers, new_key), 20, peers);
  fail_unless (all_use_key (peers, new_key), "not everyone switched");
  g_print ("rotation %s -> %s: everyone on the new key after %" G_GINT64_FORMAT
           " ms\n",
      old_key, new_key, (g_get_monotonic_time () - t0) / 1000);
  /* media keeps flowing on the new key */
  SLOT_WAIT (all_see (peers, base, 45), 30, peers);
  fail_unless (all_see (peers, base, 45), "media stopped after the rotation");
  check_drops (peers, before, "rotation");

  /* the previous key leaves the decryptors after its grace period (10 s):
   * the current one goes on working */
  while (g_get_monotonic_time () < t0 + 11500 * G_TIME_SPAN_MILLISECOND) {
    check_bus_all (peers);
    g_usleep (100 * 1000);
  }
  snapshot_drops (peers, before);
  snapshot_good (peers, base);
  SLOT_WAIT (all_see (peers, base, 15), 20, peers);
  fail_unless (all_see (peers, base, 15), "media stopped after the grace");
  check_drops (peers, before, "after the grace period");

  for (i = 0; peers[i] != NULL; i++)
    slot_peer_free (peers[i]);
}

GST_END_TEST;

typedef struct
{
  SlotPeer *peer;
  GCond *go;
  GMutex *lock;
  gboolean *started;
  gchar *event_id;
} RotateJob;

static gpointer
rotate_thread (gpointer data)
{
  RotateJob *j = data;

  g_mutex_lock (j->lock);
  while (!*j->started)
    g_cond_wait (j->go, j->lock);
  g_mutex_unlock (j->lock);
  j->event_id = rotate (j->peer);
  return NULL;
}

/* Two moderators rotate at the same moment: the room's state keeps one
 * slot event, and every member ends on the key it names; media decodes. */
GST_START_TEST (test_concurrent_rotation)
{
  SlotPeer *a = slot_peer_new ("matrixrtcbin", "two-a", TRUE);
  SlotPeer *b = slot_peer_new ("matrixrtcbin", "two-b", TRUE);
  SlotPeer *c = slot_peer_new ("matrixrtcbin", "two-c", TRUE);
  SlotPeer *peers[] = { a, b, c, NULL };
  const gchar *mods[] = { a->cp->user_id, b->cp->user_id, NULL };
  g_autofree gchar *owner_token = NULL;
  g_autofree gchar *room = create_slot_room_full (mods, TRUE, &owner_token);
  g_autofree gchar *final = NULL, *again = NULL;
  GMutex lock;
  GCond go;
  gboolean started = FALSE;
  RotateJob ja = { a, &go, &lock, &started, NULL };
  RotateJob jb = { b, &go, &lock, &started, NULL };
  GThread *ta, *tb;
  Drops before[64];
  gint base[64];
  guint i;

  g_mutex_init (&lock);
  g_cond_init (&go);
  for (i = 0; peers[i] != NULL; i++)
    slot_peer_start (peers[i], room);
  SLOT_WAIT (all_see (peers, NULL, 15) && all_same_key (peers), 60, peers);
  fail_unless (all_see (peers, NULL, 15), "the members do not see each other");
  g_usleep (G_USEC_PER_SEC);
  snapshot_drops (peers, before);

  ta = g_thread_new ("rotate-a", rotate_thread, &ja);
  tb = g_thread_new ("rotate-b", rotate_thread, &jb);
  g_mutex_lock (&lock);
  started = TRUE;
  g_cond_broadcast (&go);
  g_mutex_unlock (&lock);
  g_thread_join (ta);
  g_thread_join (tb);
  g_print (
      "concurrent rotations: %s by a, %s by b\n", ja.event_id, jb.event_id);
  fail_unless (ja.event_id != NULL && jb.event_id != NULL);

  /* the room's state keeps one of the two slot events; everyone ends on
   * the key it names */
  final = slot_key_in_state (room, owner_token);
  g_print ("the slot names %s\n", final);
  fail_unless (g_strcmp0 (final, ja.event_id) == 0
               || g_strcmp0 (final, jb.event_id) == 0);
  SLOT_WAIT (all_use_key (peers, final), 20, peers);
  fail_unless (all_use_key (peers, final), "the members use different keys");
  /* and stay there */
  g_usleep (2 * G_USEC_PER_SEC);
  again = stats_string (c, "slot-key-event-id");
  fail_unless_equals_string (again, final);
  snapshot_good (peers, base);
  SLOT_WAIT (all_see (peers, base, 30), 30, peers);
  fail_unless (all_see (peers, base, 30), "media stopped after the rotations");
  check_drops (peers, before, "two rotations");

  g_free (ja.event_id);
  g_free (jb.event_id);
  g_mutex_clear (&lock);
  g_cond_clear (&go);
  for (i = 0; peers[i] != NULL; i++)
    slot_peer_free (peers[i]);
}

GST_END_TEST;

/* A member joining after a rotation (receive-only matrixrtcsrc) gets the
 * current key (key request to the key event's sender) and decrypts from
 * its first key frame; the publisher-only matrixrtcsink member encrypts
 * with the slot key too. The room has no slot event at first: the
 * moderator opens the slot and sends its first key. */
GST_START_TEST (test_late_joiner)
{
  SlotPeer *a = slot_peer_new ("matrixrtcbin", "late-a", TRUE);
  SlotPeer *b = slot_peer_new ("matrixrtcsink", "late-b", TRUE);
  SlotPeer *c = NULL;
  SlotPeer *early[] = { a, b, NULL };
  SlotPeer *peers[] = { a, b, NULL, NULL };
  const gchar *mods[] = { a->cp->user_id, NULL };
  g_autofree gchar *owner_token = NULL;
  g_autofree gchar *room = create_slot_room_full (mods, FALSE, &owner_token);
  g_autofree gchar *old_key = NULL, *new_key = NULL, *c_key = NULL;
  gint64 t0;
  MemberCounts ca, cb;
  Drops da, db;
  guint i;

  for (i = 0; early[i] != NULL; i++)
    slot_peer_start (early[i], room);
  SLOT_WAIT (sees (a, b, 15) && all_same_key (early), 60, early);
  fail_unless (sees (a, b, 15), "a does not see b");
  old_key = stats_string (a, "slot-key-event-id");
  {
    g_autofree gchar *named = slot_key_in_state (room, owner_token);

    /* the slot a opened names a's first key */
    fail_unless_equals_string (named, old_key);
  }
  new_key = rotate (a);
  fail_unless (new_key != NULL);
  SLOT_WAIT (all_use_key (early, new_key), 20, early);
  fail_unless (all_use_key (early, new_key));

  c = slot_peer_new ("matrixrtcsrc", "late-c", FALSE);
  g_object_set (c->cp->call, "width", CALL_WIDTH, "height", CALL_HEIGHT, NULL);
  peers[2] = c;
  t0 = g_get_monotonic_time ();
  slot_peer_start (c, room);
  SLOT_WAIT (call_peer_counts (c->cp, a->cp->user_id).video_good >= 15
                 && call_peer_counts (c->cp, b->cp->user_id).video_good >= 15,
      60, peers);
  ca = call_peer_counts (c->cp, a->cp->user_id);
  cb = call_peer_counts (c->cp, b->cp->user_id);
  c_key = stats_string (c, "slot-key-event-id");
  da = drops_from (c, a->cp->user_id);
  db = drops_from (c, b->cp->user_id);
  g_print ("late joiner: key %s; first frame of a after %" G_GINT64_FORMAT
           " ms, of b after %" G_GINT64_FORMAT " ms; frames a %d (%d good), "
           "b %d (%d good); dropped before the key: a %" G_GUINT64_FORMAT
           " video %" G_GUINT64_FORMAT " audio, b %" G_GUINT64_FORMAT
           " video %" G_GUINT64_FORMAT " audio\n",
      GST_STR_NULL (c_key), (ca.first_video_us - t0) / 1000,
      (cb.first_video_us - t0) / 1000, ca.video_frames, ca.video_good,
      cb.video_frames, cb.video_good, da.video, da.audio, db.video, db.audio);
  {
    GstStructure *stats = NULL;

    g_object_get (c->cp->call, "stats", &stats, NULL);
    print_stats ("late joiner", stats);
    gst_structure_free (stats);
  }
  fail_unless_equals_string (c_key, new_key);
  /* it said it waited for the key event's Megolm session, then had it */
  {
    g_autofree gchar *waiting = g_strdup_printf ("waiting %s", new_key);
    g_autofree gchar *ready = g_strdup_printf ("ready %s", new_key);
    gint w = -1, r = -1;

    g_mutex_lock (&c->lock);
    for (i = 0; i < c->statuses->len; i++) {
      const gchar *st = g_ptr_array_index (c->statuses, i);

      if (w < 0 && g_str_equal (st, waiting))
        w = i;
      if (g_str_equal (st, ready))
        r = i;
    }
    g_mutex_unlock (&c->lock);
    fail_unless (w >= 0 && r > w, "no waiting / ready key status");
  }
  fail_unless (ca.video_good >= 15 && cb.video_good >= 15,
      "the late joiner does not decode both members");
  /* every decoded frame is a good one: decoding starts at a key frame it
   * could decrypt (frames before the key are dropped, never shown
   * corrupted) */
  fail_unless (ca.video_good >= ca.video_frames - 2,
      "%d of %d frames of a are not the picture",
      ca.video_frames - ca.video_good, ca.video_frames);
  fail_unless (cb.video_good >= cb.video_frames - 2);

  for (i = 0; peers[i] != NULL; i++)
    slot_peer_free (peers[i]);
}

GST_END_TEST;

static gboolean
has_status (SlotPeer *p, const gchar *prefix)
{
  gboolean found = FALSE;
  guint i;

  g_mutex_lock (&p->lock);
  for (i = 0; i < p->statuses->len; i++)
    if (g_str_has_prefix (g_ptr_array_index (p->statuses, i), prefix))
      found = TRUE;
  g_mutex_unlock (&p->lock);
  return found;
}

/* No moderator in the call, so no key: both members say so on the bus and
 * publish nothing the other could decode (frames are dropped, never sent
 * in clear). */
GST_START_TEST (test_no_key_no_media)
{
  SlotPeer *a = slot_peer_new ("matrixrtcbin", "nokey-a", TRUE);
  SlotPeer *b = slot_peer_new ("matrixrtcbin", "nokey-b", TRUE);
  SlotPeer *peers[] = { a, b, NULL };
  const gchar *mods[] = { NULL };
  g_autofree gchar *room = create_slot_room (mods);
  MemberCounts ab, ba;
  GstStructure *stats = NULL;
  guint i, published = 0, dropped_tracks = 0;

  for (i = 0; peers[i] != NULL; i++)
    slot_peer_start (peers[i], room);
  SLOT_WAIT (g_atomic_int_get (&a->cp->members_joined) >= 1
                 && g_atomic_int_get (&b->cp->members_joined) >= 1
                 && has_status (a, "no-key") && has_status (b, "no-key"),
      30, peers);
  fail_unless (has_status (a, "no-key") && has_status (b, "no-key"),
      "no no-key status message");
  /* media had time to flow */
  SLOT_WAIT (FALSE, 5, peers);
  ab = call_peer_counts (a->cp, b->cp->user_id);
  ba = call_peer_counts (b->cp, a->cp->user_id);
  g_object_get (a->cp->call, "stats", &stats, NULL);
  print_stats ("a without a key", stats);
  gst_structure_get_uint (stats, "published-tracks", &published);
  gst_structure_free (stats);
  /* our encryptors dropped what they got */
  {
    GstIterator *it = gst_bin_iterate_recurse (GST_BIN (a->cp->call));
    GValue item = G_VALUE_INIT;

    while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
      GstElement *e = g_value_get_object (&item);
      GstElementFactory *f = gst_element_get_factory (e);
      GstStructure *st = NULL;
      guint64 dropped = 0, frames = 0;

      if (f != NULL && g_str_equal (GST_OBJECT_NAME (f), "matrixrtcframeenc")) {
        g_object_get (e, "stats", &st, NULL);
        gst_structure_get_uint64 (st, "dropped", &dropped);
        gst_structure_get_uint64 (st, "frames", &frames);
        gst_structure_free (st);
        g_print ("a's encryptor: %" G_GUINT64_FORMAT
                 " dropped, %" G_GUINT64_FORMAT " encrypted\n",
            dropped, frames);
        fail_unless_equals_int (frames, 0);
        if (dropped > 0)
          dropped_tracks++;
      }
      g_value_reset (&item);
    }
    gst_iterator_free (it);
  }
  g_print ("without a key: a decoded %d frames of b, b %d of a\n",
      ab.video_frames, ba.video_frames);
  fail_unless_equals_int (ab.video_frames, 0);
  fail_unless_equals_int (ba.video_frames, 0);
  fail_unless_equals_int (ab.audio_buffers, 0);
  fail_unless_equals_int (ba.audio_buffers, 0);
  fail_unless_equals_int (dropped_tracks, 2);
  fail_unless_equals_int (published, 2);

  for (i = 0; peers[i] != NULL; i++)
    slot_peer_free (peers[i]);
}

GST_END_TEST;

/* The slot-shared key is a Megolm-encrypted room event: in a room without
 * m.room.encryption the element refuses to join, with a clear error. */
GST_START_TEST (test_unencrypted_room_refused)
{
  g_autofree gchar *owner_pw = NULL;
  g_autofree gchar *owner = call_register_user ("plain-owner", &owner_pw);
  g_autofree gchar *room = call_create_room (owner, owner_pw);
  SlotPeer *a = slot_peer_new ("matrixrtcbin", "plain-a", TRUE);
  GstBus *bus = gst_element_get_bus (a->cp->pipeline);
  GstMessage *msg;
  GError *err = NULL;
  gchar *dbg = NULL;

  slot_peer_start (a, room);
  msg = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error in an unencrypted room");
  gst_message_parse_error (msg, &err, &dbg);
  g_print ("unencrypted room: %s\n", err->message);
  fail_unless (strstr (err->message, "needs an encrypted room") != NULL,
      "unclear error: %s", err->message);
  g_clear_error (&err);
  g_free (dbg);
  gst_message_unref (msg);
  gst_object_unref (bus);
  slot_peer_free (a);
}

GST_END_TEST;

/* The key event's sender is gone before anyone else joined: its Megolm
 * session is nowhere to be had (key requests are answered only by the run
 * that sent it; without crypto-store every run is a new device). A
 * moderator who waited past the bound replaces the key, and media flows
 * between the moderator and a member who joined with it. */
GST_START_TEST (test_lost_key_replaced)
{
  SlotPeer *a = slot_peer_new ("matrixrtcbin", "lost-a", TRUE);
  SlotPeer *b = slot_peer_new ("matrixrtcbin", "lost-b", TRUE);
  SlotPeer *c = slot_peer_new ("matrixrtcbin", "lost-c", TRUE);
  SlotPeer *alone[] = { a, NULL };
  SlotPeer *later[] = { b, c, NULL };
  const gchar *mods[] = { a->cp->user_id, b->cp->user_id, NULL };
  g_autofree gchar *owner_token = NULL;
  g_autofree gchar *room = create_slot_room_full (mods, TRUE, &owner_token);
  g_autofree gchar *lost = NULL, *named = NULL, *b_key = NULL;
  g_autofree gchar *waiting = NULL;
  gint64 t0, t_media;
  guint i;

  slot_peer_start (a, room);
  SLOT_WAIT (uses_key (a, NULL), 60, alone);
  fail_unless (uses_key (a, NULL), "the first moderator set no key");
  lost = stats_string (a, "slot-key-event-id");
  slot_peer_free (a);

  t0 = g_get_monotonic_time ();
  for (i = 0; later[i] != NULL; i++)
    slot_peer_start (later[i], room);
  SLOT_WAIT (sees (b, c, 15) && sees (c, b, 15), 60, later);
  t_media = g_get_monotonic_time ();
  b_key = stats_string (b, "slot-key-event-id");
  named = slot_key_in_state (room, owner_token);
  g_print ("lost key %s replaced by %s; media both ways %" G_GINT64_FORMAT
           " ms after the joins\n",
      lost, GST_STR_NULL (b_key), (t_media - t0) / 1000);
  fail_unless (sees (b, c, 15) && sees (c, b, 15),
      "no media after the lost key (b sees c: %d, c sees b: %d)",
      call_peer_counts (b->cp, c->cp->user_id).video_good,
      call_peer_counts (c->cp, b->cp->user_id).video_good);
  fail_unless (b_key != NULL && g_strcmp0 (b_key, lost) != 0);
  fail_unless_equals_string (named, b_key);
  /* they waited for the lost key first, and said so */
  waiting = g_strdup_printf ("waiting %s", lost);
  fail_unless (has_status (b, waiting) && has_status (c, waiting));
  /* the bound (15 s) plus a join and a rotation */
  fail_unless ((t_media - t0) / G_USEC_PER_SEC < 40);

  for (i = 0; later[i] != NULL; i++)
    slot_peer_free (later[i]);
}

GST_END_TEST;

/* Frames the encryptors of @p encrypted in all. */
static guint64
encrypted_frames (SlotPeer *p)
{
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (p->cp->call));
  GValue item = G_VALUE_INIT;
  guint64 total = 0;

  while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&item);
    GstElementFactory *f = gst_element_get_factory (e);
    GstStructure *st = NULL;
    guint64 frames = 0;

    if (f != NULL && g_str_equal (GST_OBJECT_NAME (f), "matrixrtcframeenc")) {
      g_object_get (e, "stats", &st, NULL);
      gst_structure_get_uint64 (st, "frames", &frames);
      gst_structure_free (st);
      total += frames;
    }
    g_value_reset (&item);
  }
  gst_iterator_free (it);
  return total;
}

static guint
stats_uint (SlotPeer *p, const gchar *field)
{
  GstStructure *stats = NULL;
  guint value = 0;

  g_object_get (p->cp->call, "stats", &stats, NULL);
  gst_structure_get_uint (stats, field, &value);
  gst_structure_free (stats);
  return value;
}

/* The slot names a key event nobody can have (the room's owner points it
 * at an event that does not exist): past the grace period the members stop
 * sending with the retired key (the receivers forgot it then), their
 * encryptors drop instead; the moderator in the call replaces the key
 * after its bound and media flows again. */
GST_START_TEST (test_retired_key_not_sent)
{
  SlotPeer *a = slot_peer_new ("matrixrtcbin", "retire-a", TRUE);
  SlotPeer *c = slot_peer_new ("matrixrtcbin", "retire-c", TRUE);
  SlotPeer *peers[] = { a, c, NULL };
  const gchar *mods[] = { a->cp->user_id, NULL };
  g_autofree gchar *owner_token = NULL;
  g_autofree gchar *room = create_slot_room_full (mods, TRUE, &owner_token);
  g_autofree gchar *first = NULL, *path = NULL, *escaped = NULL;
  g_autoptr (JsonObject) sent = NULL;
  const gchar *bogus = "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  guint64 before, after;
  gint base_ca;
  guint i;

  for (i = 0; peers[i] != NULL; i++)
    slot_peer_start (peers[i], room);
  SLOT_WAIT (sees (a, c, 15) && sees (c, a, 15), 60, peers);
  fail_unless (sees (a, c, 15) && sees (c, a, 15), "no media at the start");
  first = stats_string (c, "slot-key-event-id");

  escaped = g_uri_escape_string (room, NULL, FALSE);
  path = g_strdup_printf ("/_matrix/client/v3/rooms/%s/state/"
                          "org.matrix.msc4143.rtc.slot/m.call%%23ROOM",
      escaped);
  {
    g_autofree gchar *body = g_strdup_printf (
        "{\"status\":\"open\",\"application\":{\"type\":\"m.call\","
        "\"m.shared_key_event\":\"%s\"}}",
        bogus);

    sent = hs_call ("PUT", path, owner_token, body);
  }
  /* the grace period is 10 s */
  SLOT_WAIT (stats_uint (c, "slot-key-retired") >= 1, 14, peers);
  fail_unless (stats_uint (c, "slot-key-retired") >= 1,
      "c did not retire the key the slot no longer names");
  before = encrypted_frames (c);
  SLOT_WAIT (FALSE, 1, peers);
  after = encrypted_frames (c);
  g_print ("retired key: c encrypted %" G_GUINT64_FORMAT
           " frames in the second after\n",
      after - before);
  /* (a frame in flight at most) */
  fail_unless (after - before <= 2, "c still sends with the retired key");

  /* a replaces the key it cannot have (15 s bound) */
  base_ca = call_peer_counts (c->cp, a->cp->user_id).video_good;
  SLOT_WAIT (!uses_key (c, first) && uses_key (c, NULL)
                 && call_peer_counts (c->cp, a->cp->user_id).video_good
                        >= base_ca + 15,
      40, peers);
  fail_unless (
      call_peer_counts (c->cp, a->cp->user_id).video_good >= base_ca + 15,
      "no media after the replacement");
  fail_unless (encrypted_frames (c) > after + 15, "c does not send again");

  for (i = 0; peers[i] != NULL; i++)
    slot_peer_free (peers[i]);
}

GST_END_TEST;

/* A track the SFU says is unencrypted (here: a member publishing with
 * e2ee-mode=none, as a malicious SFU would mark any track) in an encrypted
 * call: it goes through the decryptor anyway, which drops and counts its
 * clear frames; nothing of it is shown as the member's media. */
GST_START_TEST (test_clear_track_dropped)
{
  SlotPeer *a = slot_peer_new ("matrixrtcbin", "clear-a", TRUE);
  SlotPeer *m = slot_peer_new ("matrixrtcbin", "clear-m", TRUE);
  SlotPeer *peers[] = { a, m, NULL };
  const gchar *mods[] = { a->cp->user_id, NULL };
  g_autofree gchar *room = create_slot_room (mods);
  MemberCounts am;
  Drops d;
  guint i;

  gst_util_set_object_arg (G_OBJECT (m->cp->call), "e2ee-mode", "none");
  for (i = 0; peers[i] != NULL; i++)
    slot_peer_start (peers[i], room);
  SLOT_WAIT (drops_from (a, m->cp->user_id).video >= 20
                 && drops_from (a, m->cp->user_id).audio >= 20,
      60, peers);
  d = drops_from (a, m->cp->user_id);
  am = call_peer_counts (a->cp, m->cp->user_id);
  g_print ("clear track: a's decryptors dropped %" G_GUINT64_FORMAT
           " video and %" G_GUINT64_FORMAT " audio frames of m; a decoded "
           "%d video frames, %d audio buffers of m\n",
      d.video, d.audio, am.video_frames, am.audio_buffers);
  fail_unless (d.video >= 20 && d.audio >= 20,
      "m's clear tracks did not reach a decryptor");
  fail_unless_equals_int (am.video_frames, 0);
  fail_unless_equals_int (am.audio_buffers, 0);

  for (i = 0; peers[i] != NULL; i++)
    slot_peer_free (peers[i]);
}

GST_END_TEST;

static Suite *
slotkey_suite (void)
{
  Suite *s = suite_create ("matrixrtc slot-shared key");
  TCase *tc = tcase_create ("general");
  g_autoptr (GError) error = NULL;

  call_filter_known_warnings ();

  if (!stack_env_load (&error))
    g_error ("the local stack is not up: %s", error->message);
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_three_members);
  tcase_add_test (tc, test_rotation_mid_call);
  tcase_add_test (tc, test_concurrent_rotation);
  tcase_add_test (tc, test_late_joiner);
  tcase_add_test (tc, test_no_key_no_media);
  tcase_add_test (tc, test_lost_key_replaced);
  tcase_add_test (tc, test_retired_key_not_sent);
  tcase_add_test (tc, test_clear_track_dropped);
  tcase_add_test (tc, test_unencrypted_room_refused);
  return s;
}

GST_CHECK_MAIN (slotkey);
