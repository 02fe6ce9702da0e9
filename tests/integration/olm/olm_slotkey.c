/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Integration tests of the slot-shared media key (issue 8) on the real
 * Synapse of the local stack: fresh users per test in encrypted rooms, each
 * participant with its own client, Olm machine and MrtcOlmSlotKey. Every
 * log line (all levels) is captured and checked for key bytes. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <glib/gstdio.h>
#include <string.h>

#include "mrtcolmslotkey.h"
#include "olmtestpeer.h"
#include "stackenv.h"

#define WAIT_US (20 * G_USEC_PER_SEC)
#define GRACE_MS 3000

static gchar *store_dir;
static GPtrArray *secrets; /* GBytes: every key seen */
static GMutex secrets_lock;

typedef struct
{
  guint index;
  GBytes *key;
  gchar *event_id;
  gint64 at; /* monotonic µs */
} KeyChange;

static void
key_change_free (KeyChange *c)
{
  g_bytes_unref (c->key);
  g_free (c->event_id);
  g_free (c);
}

typedef struct
{
  OlmTestPeer *peer;
  MrtcOlmSlotKey *sk;
  GAsyncQueue *changes;  /* KeyChange */
  GAsyncQueue *statuses; /* gchar * message */
  GAsyncQueue *expired;  /* gchar * event id */
  GAsyncQueue *known;    /* gchar * event id (key-known) */
} Participant;

static void
on_key_changed (MrtcOlmSlotKey *sk, guint index, GBytes *key,
    const gchar *event_id, gpointer data)
{
  Participant *p = data;
  KeyChange *c = g_new0 (KeyChange, 1);

  c->index = index;
  c->key = g_bytes_ref (key);
  c->event_id = g_strdup (event_id);
  c->at = g_get_monotonic_time ();
  g_mutex_lock (&secrets_lock);
  g_ptr_array_add (secrets, g_bytes_ref (key));
  g_mutex_unlock (&secrets_lock);
  g_async_queue_push (p->changes, c);
}

static void
on_key_status (MrtcOlmSlotKey *sk, guint status, const gchar *event_id,
    const gchar *message, gpointer data)
{
  Participant *p = data;

  g_async_queue_push (p->statuses, g_strdup (message));
}

static void
on_key_expired (
    MrtcOlmSlotKey *sk, guint index, const gchar *event_id, gpointer data)
{
  Participant *p = data;

  g_async_queue_push (p->expired, g_strdup (event_id));
}

static void
on_key_known (MrtcOlmSlotKey *sk, guint index, GBytes *key,
    const gchar *event_id, gpointer data)
{
  Participant *p = data;

  g_mutex_lock (&secrets_lock);
  g_ptr_array_add (secrets, g_bytes_ref (key));
  g_mutex_unlock (&secrets_lock);
  g_async_queue_push (p->known, g_strdup (event_id));
}

static Participant *
participant_new (const gchar *prefix)
{
  Participant *p = g_new0 (Participant, 1);

  p->peer = olm_test_peer_new (prefix, store_dir);
  p->changes = g_async_queue_new_full ((GDestroyNotify)key_change_free);
  p->statuses = g_async_queue_new_full (g_free);
  p->expired = g_async_queue_new_full (g_free);
  p->known = g_async_queue_new_full (g_free);
  return p;
}

static void
participant_start (Participant *p, const gchar *room_id)
{
  g_autoptr (GError) error = NULL;

  p->sk = mrtc_olm_slot_key_new (p->peer->machine, room_id, NULL);
  mrtc_olm_slot_key_set_grace (p->sk, GRACE_MS);
  g_signal_connect (p->sk, "key-changed", G_CALLBACK (on_key_changed), p);
  g_signal_connect (p->sk, "key-status", G_CALLBACK (on_key_status), p);
  g_signal_connect (p->sk, "key-expired", G_CALLBACK (on_key_expired), p);
  g_signal_connect (p->sk, "key-known", G_CALLBACK (on_key_known), p);
  g_assert_true (mrtc_olm_slot_key_start (p->sk, &error));
  g_assert_no_error (error);
}

static void
participant_free (Participant *p)
{
  if (p->sk != NULL) {
    mrtc_olm_slot_key_stop (p->sk);
    g_clear_object (&p->sk);
  }
  olm_test_peer_free (p->peer);
  g_async_queue_unref (p->changes);
  g_async_queue_unref (p->statuses);
  g_async_queue_unref (p->expired);
  g_async_queue_unref (p->known);
  g_free (p);
}

/* Waits for the key of @event_id (earlier changes are dropped). */
static KeyChange *
wait_key (Participant *p, const gchar *event_id)
{
  gint64 end = g_get_monotonic_time () + WAIT_US;

  while (g_get_monotonic_time () < end) {
    KeyChange *c = g_async_queue_timeout_pop (
        p->changes, MAX (end - g_get_monotonic_time (), 1));

    if (c == NULL)
      break;
    if (g_strcmp0 (c->event_id, event_id) == 0)
      return c;
    key_change_free (c);
  }
  g_error ("%s never got the key of %s", p->peer->user_id, event_id);
  return NULL;
}

static gboolean
wait_status (Participant *p, const gchar *needle)
{
  gint64 end = g_get_monotonic_time () + WAIT_US;
  gchar *m;

  while ((m = g_async_queue_timeout_pop (
              p->statuses, MAX (end - g_get_monotonic_time (), 1)))
         != NULL) {
    gboolean found = strstr (m, needle) != NULL;

    g_free (m);
    if (found)
      return TRUE;
  }
  return FALSE;
}

/* An encrypted room created by @mods[0] in which every moderator has
 * power 100 and the members 0, with an open slot m.call#ROOM. */
static gchar *
create_room (
    Participant **mods, guint n_mods, Participant **members, guint n_members)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body = json_object_new ();
  JsonArray *invite = json_array_new ();
  JsonArray *initial = json_array_new ();
  JsonObject *enc = json_object_new ();
  JsonObject *enc_content = json_object_new ();
  JsonObject *pl = json_object_new ();
  JsonObject *users = json_object_new ();
  g_autoptr (JsonObject) slot = NULL;
  g_autofree gchar *slot_event = NULL;
  gchar *room_id;
  guint i;

  json_object_set_string_member (body, "preset", "private_chat");
  /* The creator outranks everyone already (room version 12 refuses it
   * in users). */
  for (i = 1; i < n_mods; i++)
    json_object_set_int_member (users, mods[i]->peer->user_id, 100);
  json_object_set_object_member (pl, "users", users);
  json_object_set_object_member (body, "power_level_content_override", pl);
  for (i = 1; i < n_mods; i++)
    json_array_add_string_element (invite, mods[i]->peer->user_id);
  for (i = 0; i < n_members; i++)
    json_array_add_string_element (invite, members[i]->peer->user_id);
  json_object_set_array_member (body, "invite", invite);
  json_object_set_string_member (enc, "type", "m.room.encryption");
  json_object_set_string_member (enc, "state_key", "");
  json_object_set_string_member (
      enc_content, "algorithm", MRTC_OLM_ALGORITHM_MEGOLM);
  json_object_set_object_member (enc, "content", enc_content);
  json_array_add_object_element (initial, enc);
  json_object_set_array_member (body, "initial_state", initial);
  room_id = mrtc_client_create_room (mods[0]->peer->client, body, &error);
  g_assert_no_error (error);
  for (i = 0; i < n_mods + n_members; i++) {
    Participant *p = i < n_mods ? mods[i] : members[i - n_mods];
    g_autofree gchar *joined = NULL;

    if (i > 0) {
      joined = mrtc_client_join_room (p->peer->client, room_id, &error);
      g_assert_no_error (error);
    }
  }
  for (i = 0; i < n_mods + n_members; i++) {
    Participant *p = i < n_mods ? mods[i] : members[i - n_mods];

    g_assert_true (
        mrtc_olm_machine_track_room (p->peer->machine, room_id, &error));
    g_assert_no_error (error);
  }
  slot = mrtc_olm_json_object_from_string (
      "{\"status\":\"open\",\"application\":{\"type\":\"m.call\"}}", -1,
      &error);
  g_assert_no_error (error);
  slot_event = mrtc_client_send_state (mods[0]->peer->client, room_id,
      MRTC_OLM_SLOT_EVENT_TYPE, "m.call#ROOM", slot, -1, &error);
  g_assert_no_error (error);
  return room_id;
}

/* The slot content in the room state now, as text. */
static gchar *
slot_text (Participant *p, const gchar *room_id)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonArray) state
      = mrtc_client_get_room_state (p->peer->client, room_id, &error);
  guint i;

  g_assert_no_error (error);
  for (i = 0; i < json_array_get_length (state); i++) {
    JsonObject *ev = json_array_get_object_element (state, i);

    if (g_strcmp0 (json_object_get_string_member (ev, "type"),
            MRTC_OLM_SLOT_EVENT_TYPE)
        == 0)
      return mrtc_olm_json_object_to_string (
          json_object_get_object_member (ev, "content"));
  }
  return NULL;
}

static gchar *
rotate (Participant *p)
{
  g_autoptr (GError) error = NULL;
  gchar *event_id = mrtc_olm_slot_key_rotate (p->sk, &error);

  g_assert_no_error (error);
  g_assert_nonnull (event_id);
  return event_id;
}

static void
check_logs (void)
{
  guint i;

  /* The capture works (our own lines at info and debug are in it). */
  g_assert_true (olm_test_logs_contain ("now current at index"));

  g_mutex_lock (&secrets_lock);
  for (i = 0; i < secrets->len; i++) {
    gsize len;
    const guint8 *data
        = g_bytes_get_data (g_ptr_array_index (secrets, i), &len);

    olm_test_assert_secret_not_logged (data, len);
  }
  g_mutex_unlock (&secrets_lock);
}

/* Three participants end on the same key; a rotation mid-call reaches all
 * within seconds and the previous key stays for the grace period. */
static void
test_three_and_rotation (void)
{
  Participant *a = participant_new ("skA");
  Participant *b = participant_new ("skB");
  Participant *c = participant_new ("skC");
  Participant *members[] = { b, c };
  Participant *all[] = { a, b, c };
  g_autofree gchar *room = create_room (&a, 1, members, 2);
  g_autofree gchar *e1 = NULL, *e2 = NULL;
  KeyChange *k1[3], *k2[3];
  gint64 sent_at, last = 0;
  guint i;

  for (i = 0; i < 3; i++) {
    participant_start (all[i], room);
    g_assert_true (wait_status (all[i], "names no shared key event"));
  }

  e1 = rotate (a);
  for (i = 0; i < 3; i++) {
    k1[i] = wait_key (all[i], e1);
    g_assert_cmpuint (k1[i]->index, ==, mrtc_olm_slot_key_index_for_event (e1));
    g_assert_cmpuint (g_bytes_get_size (k1[i]->key), ==, 16);
    g_assert_true (g_bytes_equal (k1[i]->key, k1[0]->key));
  }

  /* Mid-call rotation. */
  sent_at = g_get_monotonic_time ();
  e2 = rotate (a);
  for (i = 0; i < 3; i++) {
    g_autoptr (GBytes) prev = NULL;

    k2[i] = wait_key (all[i], e2);
    g_assert_true (g_bytes_equal (k2[i]->key, k2[0]->key));
    g_assert_false (g_bytes_equal (k2[i]->key, k1[0]->key));
    last = MAX (last, k2[i]->at);
    /* The previous key is still there for frames in flight. */
    prev = mrtc_olm_slot_key_lookup (all[i]->sk, k1[i]->index);
    g_assert_nonnull (prev);
    g_assert_true (g_bytes_equal (prev, k1[0]->key));
  }
  g_test_message ("rotation picked up by all 3 in %" G_GINT64_FORMAT " ms",
      (last - sent_at) / 1000);
  g_assert_cmpint (last - sent_at, <, 5 * G_USEC_PER_SEC);

  /* After the grace period it goes; the new key stays. */
  for (i = 0; i < 3; i++) {
    gchar *expired
        = g_async_queue_timeout_pop (all[i]->expired, (GRACE_MS + 5000) * 1000);
    g_autoptr (GBytes) cur = NULL;
    g_autoptr (GBytes) prev = NULL;

    g_assert_cmpstr (expired, ==, e1);
    g_free (expired);
    /* Only the old key's own index is gone. */
    prev = mrtc_olm_slot_key_lookup (all[i]->sk, k1[i]->index);
    g_assert_null (prev);
    cur = mrtc_olm_slot_key_lookup (all[i]->sk, k2[i]->index);
    g_assert_true (g_bytes_equal (cur, k2[0]->key));
    g_assert_cmpint (
        k2[i]->at - sent_at, <, GRACE_MS * 1000 + 5 * G_USEC_PER_SEC);
    g_assert_cmpint (mrtc_olm_slot_key_get_status (all[i]->sk, NULL), ==,
        MRTC_OLM_SLOT_KEY_STATUS_READY);
  }
  for (i = 0; i < 3; i++) {
    key_change_free (k1[i]);
    key_change_free (k2[i]);
    participant_free (all[i]);
  }
  check_logs ();
}

typedef struct
{
  Participant *p;
  gchar *event_id;
  GError *error;
} RotateArgs;

static gpointer
rotate_thread (gpointer data)
{
  RotateArgs *r = data;

  r->event_id = mrtc_olm_slot_key_rotate (r->p->sk, &r->error);
  return NULL;
}

/* Two moderators rotate at the same moment: everyone ends on the key the
 * slot event kept by the room's state names. */
static void
test_concurrent_moderators (void)
{
  Participant *a = participant_new ("skMa");
  Participant *b = participant_new ("skMb");
  Participant *c = participant_new ("skMc");
  Participant *mods[] = { a, b };
  Participant *all[] = { a, b, c };
  g_autofree gchar *room = create_room (mods, 2, &c, 1);
  RotateArgs ra = { a, NULL, NULL }, rb = { b, NULL, NULL };
  GThread *ta, *tb;
  g_autofree gchar *slot = NULL;
  g_autofree gchar *winner = NULL;
  gint64 end;
  guint i;
  gboolean converged = FALSE;

  for (i = 0; i < 3; i++)
    participant_start (all[i], room);

  ta = g_thread_new ("rotate-a", rotate_thread, &ra);
  tb = g_thread_new ("rotate-b", rotate_thread, &rb);
  g_thread_join (ta);
  g_thread_join (tb);
  g_assert_no_error (ra.error);
  g_assert_no_error (rb.error);
  g_assert_cmpstr (ra.event_id, !=, rb.event_id);

  /* The room's state decides. */
  slot = slot_text (a, room);
  g_assert_nonnull (slot);
  if (strstr (slot, ra.event_id) != NULL)
    winner = g_strdup (ra.event_id);
  else if (strstr (slot, rb.event_id) != NULL)
    winner = g_strdup (rb.event_id);
  g_assert_nonnull (winner);

  end = g_get_monotonic_time () + WAIT_US;
  while (!converged && g_get_monotonic_time () < end) {
    g_autoptr (GBytes) first = NULL;

    converged = TRUE;
    for (i = 0; i < 3 && converged; i++) {
      g_autofree gchar *id = NULL;
      g_autoptr (GBytes) key
          = mrtc_olm_slot_key_get_current (all[i]->sk, NULL, &id);

      if (key == NULL || g_strcmp0 (id, winner) != 0)
        converged = FALSE;
      else if (first == NULL)
        first = g_bytes_ref (key);
      else if (!g_bytes_equal (first, key))
        converged = FALSE;
    }
    if (!converged)
      g_usleep (100 * 1000);
  }
  for (i = 0; i < 3 && !converged; i++) {
    g_autofree gchar *id = NULL, *message = NULL;
    g_autoptr (GBytes) key
        = mrtc_olm_slot_key_get_current (all[i]->sk, NULL, &id);

    mrtc_olm_slot_key_get_status (all[i]->sk, &message);
    g_test_message ("%s: current %s (%s), %s (requests %u)",
        all[i]->peer->user_id, id != NULL ? id : "none",
        key != NULL ? "a key" : "no key", message,
        mrtc_olm_slot_key_get_requests_sent (all[i]->sk));
  }
  g_assert_true (converged);
  g_test_message (
      "two rotations (%s, %s): all on %s", ra.event_id, rb.event_id, winner);
  g_free (ra.event_id);
  g_free (rb.event_id);
  for (i = 0; i < 3; i++)
    participant_free (all[i]);
  check_logs ();
}

/* A member who joins after a rotation gets the current key: its device
 * was not in the room when the key event was encrypted, so it asks the
 * key event's sender, which answers over Olm. */
static void
test_late_joiner (void)
{
  Participant *a = participant_new ("skLa");
  Participant *b = participant_new ("skLb");
  Participant *d = participant_new ("skLd");
  g_autofree gchar *room = create_room (&a, 1, &b, 1);
  g_autofree gchar *e1 = NULL;
  g_autofree gchar *waiting = NULL;
  g_autofree gchar *joined = NULL;
  g_autoptr (GError) error = NULL;
  KeyChange *ka, *kd;
  gint64 start;

  participant_start (a, room);
  participant_start (b, room);
  e1 = rotate (a);
  ka = wait_key (a, e1);
  key_change_free (wait_key (b, e1));

  /* D is invited and joins after the rotation. */
  {
    g_autofree gchar *path
        = g_strdup_printf ("/_matrix/client/v3/rooms/%s/invite", room);
    MrtcRequest *req = mrtc_request_new ("POST", path);
    JsonObject *body = json_object_new ();
    g_autoptr (JsonNode) resp = NULL;

    json_object_set_string_member (body, "user_id", d->peer->user_id);
    mrtc_request_set_body_object (req, body);
    resp = mrtc_client_call (a->peer->client, req, &error);
    g_assert_no_error (error);
  }
  joined = mrtc_client_join_room (d->peer->client, room, &error);
  g_assert_no_error (error);
  g_assert_true (mrtc_olm_machine_track_room (d->peer->machine, room, &error));
  g_assert_no_error (error);
  start = g_get_monotonic_time ();
  participant_start (d, room);

  kd = wait_key (d, e1);
  g_assert_true (g_bytes_equal (kd->key, ka->key));
  g_assert_cmpuint (kd->index, ==, ka->index);
  waiting = g_strdup_printf ("waiting for key event %s", e1);
  g_assert_true (wait_status (d, waiting));
  g_test_message ("late joiner got the key in %" G_GINT64_FORMAT
                  " ms after %u key requests",
      (kd->at - start) / 1000, mrtc_olm_slot_key_get_requests_sent (d->sk));
  key_change_free (ka);
  key_change_free (kd);
  participant_free (a);
  participant_free (b);
  participant_free (d);
  check_logs ();
}

/* A member without the power level cannot rotate: a clear error, nothing
 * sent, nothing changed. */
static void
test_non_moderator (void)
{
  Participant *a = participant_new ("skNa");
  Participant *b = participant_new ("skNb");
  Participant *all[] = { a, b };
  g_autofree gchar *room = create_room (&a, 1, &b, 1);
  g_autofree gchar *e1 = NULL;
  g_autofree gchar *before = NULL, *after = NULL;
  g_autoptr (GError) error = NULL;
  gchar *event_id;
  KeyChange *c;
  guint i;

  for (i = 0; i < 2; i++)
    participant_start (all[i], room);
  e1 = rotate (a);
  for (i = 0; i < 2; i++)
    key_change_free (wait_key (all[i], e1));
  before = slot_text (a, room);

  event_id = mrtc_olm_slot_key_rotate (b->sk, &error);
  g_assert_null (event_id);
  g_assert_error (
      error, MRTC_OLM_SLOT_KEY_ERROR, MRTC_OLM_SLOT_KEY_ERROR_PERMISSION);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "lacks the power level"));
  g_clear_error (&error);

  /* Nothing changed: same slot, no new key anywhere. */
  after = slot_text (a, room);
  g_assert_cmpstr (before, ==, after);
  for (i = 0; i < 2; i++) {
    g_autofree gchar *id = NULL;
    g_autoptr (GBytes) key = NULL;

    c = g_async_queue_timeout_pop (all[i]->changes, 2 * G_USEC_PER_SEC);
    g_assert_null (c);
    key = mrtc_olm_slot_key_get_current (all[i]->sk, NULL, &id);
    g_assert_cmpstr (id, ==, e1);
  }

  /* A member's own key event (Megolm-encrypted, as a moderator's): the
   * others decrypt it but never install it ahead of the slot (only users
   * who may change the slot can name a key). */
  {
    guint8 bytes[MRTC_OLM_SLOT_KEY_LEN];
    g_autoptr (JsonObject) content = NULL;
    g_autoptr (JsonObject) encrypted = NULL;
    g_autofree gchar *rogue = NULL;
    gchar *known;
    gint64 end;

    memset (bytes, 0x3c, sizeof (bytes));
    content = mrtc_olm_slot_key_content_build (bytes);
    encrypted = mrtc_olm_machine_encrypt_room_event (
        b->peer->machine, room, MRTC_OLM_SLOT_KEY_EVENT_TYPE, content, &error);
    g_assert_no_error (error);
    rogue = mrtc_client_send_event (
        b->peer->client, room, "m.room.encrypted", encrypted, -1, -1, &error);
    g_assert_no_error (error);
    end = g_get_monotonic_time () + WAIT_US;
    while (!olm_test_logs_contain ("who may not change the slot")
           && g_get_monotonic_time () < end)
      g_usleep (50 * 1000);
    g_assert_true (olm_test_logs_contain ("who may not change the slot"));
    while ((known = g_async_queue_try_pop (a->known)) != NULL) {
      g_assert_cmpstr (known, !=, rogue);
      g_free (known);
    }
  }

  /* A closed slot names no key: rotating it is refused. */
  {
    g_autoptr (JsonObject) closed = mrtc_olm_json_object_from_string (
        "{\"status\":\"closed\",\"application\":{\"type\":\"m.call\"}}", -1,
        NULL);
    g_autofree gchar *state_id = mrtc_client_send_state (a->peer->client, room,
        MRTC_OLM_SLOT_EVENT_TYPE, "m.call#ROOM", closed, -1, &error);

    g_assert_no_error (error);
    event_id = mrtc_olm_slot_key_rotate (a->sk, &error);
    g_assert_null (event_id);
    g_assert_error (
        error, MRTC_OLM_SLOT_KEY_ERROR, MRTC_OLM_SLOT_KEY_ERROR_NO_SLOT);
    g_test_message ("%s", error->message);
    g_clear_error (&error);
  }
  /* Stopped (we left): a rotation sends nothing, and a second stop (the
   * last reference's) is harmless. */
  {
    g_autofree gchar *slot_before = slot_text (a, room);
    g_autofree gchar *slot_after = NULL;

    mrtc_olm_slot_key_stop (a->sk);
    event_id = mrtc_olm_slot_key_rotate (a->sk, &error);
    g_assert_null (event_id);
    g_assert_error (
        error, MRTC_OLM_SLOT_KEY_ERROR, MRTC_OLM_SLOT_KEY_ERROR_STATE);
    g_clear_error (&error);
    slot_after = slot_text (a, room);
    g_assert_cmpstr (slot_before, ==, slot_after);
  }
  for (i = 0; i < 2; i++)
    participant_free (all[i]);
  check_logs ();
}

/* A key event sent in clear is never used (a key everyone on the server
 * can read is no secret): the members say so and keep no key until a
 * moderator rotates properly. */
static void
test_plaintext_key_refused (void)
{
  Participant *a = participant_new ("skPa");
  Participant *b = participant_new ("skPb");
  Participant *all[] = { a, b };
  g_autofree gchar *room = create_room (&a, 1, &b, 1);
  g_autoptr (JsonObject) content = NULL;
  g_autoptr (JsonObject) slot = NULL;
  g_autofree gchar *plain = NULL, *state = NULL, *e1 = NULL;
  g_autoptr (GError) error = NULL;
  guint8 bytes[16];
  guint i;

  for (i = 0; i < 2; i++)
    participant_start (all[i], room);
  memset (bytes, 0x5a, sizeof (bytes));
  content = mrtc_olm_slot_key_content_build (bytes);
  plain = mrtc_client_send_event (a->peer->client, room,
      MRTC_OLM_SLOT_KEY_EVENT_TYPE, content, -1, -1, &error);
  g_assert_no_error (error);
  slot = mrtc_olm_json_object_from_string (
      "{\"status\":\"open\",\"application\":{\"type\":\"m.call\"}}", -1,
      &error);
  json_object_set_string_member (
      json_object_get_object_member (slot, "application"),
      MRTC_OLM_SLOT_KEY_REFERENCE, plain);
  state = mrtc_client_send_state (a->peer->client, room,
      MRTC_OLM_SLOT_EVENT_TYPE, "m.call#ROOM", slot, -1, &error);
  g_assert_no_error (error);

  for (i = 0; i < 2; i++) {
    g_autoptr (GBytes) key = NULL;

    g_assert_true (wait_status (all[i], "not Megolm-encrypted"));
    g_assert_cmpint (mrtc_olm_slot_key_get_status (all[i]->sk, NULL), ==,
        MRTC_OLM_SLOT_KEY_STATUS_INVALID);
    key = mrtc_olm_slot_key_get_current (all[i]->sk, NULL, NULL);
    g_assert_null (key);
    g_assert_null (g_async_queue_try_pop (all[i]->changes));
  }

  /* A proper rotation repairs it. */
  e1 = rotate (a);
  for (i = 0; i < 2; i++)
    key_change_free (wait_key (all[i], e1));
  for (i = 0; i < 2; i++)
    participant_free (all[i]);
  check_logs ();
}

/* A member whose process restarts after the rotation, the key event far
 * behind the first sync's timeline: the key event is fetched and decrypted
 * with the Megolm session kept in the device's store, without asking
 * anyone. */
static void
test_restart_fetches_key (void)
{
  Participant *a = participant_new ("skRa");
  Participant *b = participant_new ("skRb");
  g_autofree gchar *room = create_room (&a, 1, &b, 1);
  g_autofree gchar *e1 = NULL;
  g_autofree gchar *device = NULL;
  g_autoptr (GError) error = NULL;
  KeyChange *ka, *kb;
  guint i;

  participant_start (a, room);
  participant_start (b, room);
  e1 = rotate (a);
  ka = wait_key (a, e1);
  key_change_free (wait_key (b, e1));

  /* B goes away; more than a sync timeline (100 events) follows. */
  mrtc_olm_slot_key_stop (b->sk);
  g_clear_object (&b->sk);
  device = g_strdup (b->peer->device_id);
  olm_test_peer_stop (b->peer);
  for (i = 0; i < 110; i++) {
    g_autoptr (JsonObject) msg = json_object_new ();
    g_autofree gchar *id = NULL;

    json_object_set_string_member (msg, "msgtype", "m.text");
    json_object_set_string_member (msg, "body", "filler");
    id = mrtc_client_send_event (
        a->peer->client, room, "m.room.message", msg, -1, -1, &error);
    g_assert_no_error (error);
  }

  /* Forget B's statuses so far. */
  {
    gchar *m;

    while ((m = g_async_queue_try_pop (b->statuses)) != NULL)
      g_free (m);
  }

  /* B comes back on the same device and store. */
  g_assert_true (olm_test_peer_login (b->peer, device, store_dir, &error));
  g_assert_no_error (error);
  b->sk = mrtc_olm_slot_key_new (b->peer->machine, room, NULL);
  /* No key request before 10 s: the key must come from the fetch. */
  mrtc_olm_slot_key_set_request_backoff (b->sk, 10000, 30000);
  g_signal_connect (b->sk, "key-changed", G_CALLBACK (on_key_changed), b);
  g_signal_connect (b->sk, "key-status", G_CALLBACK (on_key_status), b);
  g_assert_true (mrtc_olm_slot_key_start (b->sk, &error));
  g_assert_no_error (error);
  kb = g_async_queue_timeout_pop (b->changes, 8 * G_USEC_PER_SEC);
  g_assert_nonnull (kb);
  g_assert_cmpstr (kb->event_id, ==, e1);
  g_assert_true (g_bytes_equal (kb->key, ka->key));
  g_assert_cmpuint (mrtc_olm_slot_key_get_requests_sent (b->sk), ==, 0);
  g_assert_true (olm_test_logs_contain ("handing it to the machine"));
  /* A sync that replays older responses (seen after a re-login on the same
   * device) never takes the slot back to an older event. */
  g_usleep (2 * G_USEC_PER_SEC);
  {
    gchar *m;

    while ((m = g_async_queue_try_pop (b->statuses)) != NULL) {
      g_assert_null (strstr (m, "names no shared key"));
      g_free (m);
    }
  }
  key_change_free (ka);
  key_change_free (kb);
  participant_free (a);
  participant_free (b);
  check_logs ();
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  int ret;

  olm_test_capture_logs ();
  g_test_init (&argc, &argv, NULL);
  if (!stack_env_load (&error))
    g_error ("the local stack is not up (tests/env/up): %s", error->message);
  secrets = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  store_dir = g_dir_make_tmp ("mrtc-slotkey-XXXXXX", &error);
  g_assert_no_error (error);

  g_test_add_func ("/slotkey/three-and-rotation", test_three_and_rotation);
  g_test_add_func (
      "/slotkey/concurrent-moderators", test_concurrent_moderators);
  g_test_add_func ("/slotkey/late-joiner", test_late_joiner);
  g_test_add_func ("/slotkey/non-moderator", test_non_moderator);
  g_test_add_func ("/slotkey/restart-fetches-key", test_restart_fetches_key);
  g_test_add_func (
      "/slotkey/plaintext-key-refused", test_plaintext_key_refused);
  ret = g_test_run ();

  {
    g_autoptr (GDir) dir = g_dir_open (store_dir, 0, NULL);
    const gchar *name;

    while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
      g_autofree gchar *path = g_build_filename (store_dir, name, NULL);

      g_unlink (path);
    }
  }
  g_rmdir (store_dir);
  g_free (store_dir);
  g_ptr_array_unref (secrets);
  return ret;
}
