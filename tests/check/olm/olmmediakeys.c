/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Unit tests of the MatrixRTC media keys in ext/olm: the
 * io.element.call.encryption_keys content, the rotation policy (fake clock)
 * and the binding of received keys to members. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <string.h>

#include "olmtestutil.h"

#define ROOM "!call:hs"

static gint64 fake_now;

static gint64
fake_clock (gpointer user_data)
{
  return fake_now;
}

static const guint8 test_key[16] = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
  0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0xff };

static JsonObject *
parse_json (const gchar *text)
{
  GError *error = NULL;
  JsonObject *o = mrtc_olm_json_object_from_string (text, -1, &error);

  g_assert_no_error (error);
  return o;
}

GST_START_TEST (test_content_round_trip)
{
  g_autoptr (JsonObject) content = NULL;
  g_autoptr (JsonObject) wire = NULL;
  g_autoptr (MrtcOlmMediaKeyContent) parsed = NULL;
  g_autofree gchar *text = NULL;
  GError *error = NULL;
  JsonObject *keys, *member, *session;

  content = mrtc_olm_media_key_content_build (ROOM, 257, test_key,
      sizeof (test_key), "DEV", "member-uuid", 1760000000000);
  text = mrtc_olm_json_object_to_string (content);
  wire = parse_json (text);

  /* matrix-js-sdk 43's shape. */
  keys = json_object_get_object_member (wire, "keys");
  fail_unless_equals_int (json_object_get_int_member (keys, "index"), 1);
  fail_unless_equals_string (
      json_object_get_string_member (keys, "key"), "AAECAwQFBgcICQoLDA0O/w==");
  fail_unless_equals_string (
      json_object_get_string_member (wire, "room_id"), ROOM);
  member = json_object_get_object_member (wire, "member");
  fail_unless_equals_string (
      json_object_get_string_member (member, "claimed_device_id"), "DEV");
  fail_unless_equals_string (
      json_object_get_string_member (member, "id"), "member-uuid");
  session = json_object_get_object_member (wire, "session");
  fail_unless_equals_string (
      json_object_get_string_member (session, "call_id"), "");
  fail_unless_equals_string (
      json_object_get_string_member (session, "application"), "m.call");
  fail_unless_equals_string (
      json_object_get_string_member (session, "scope"), "m.room");
  fail_unless_equals_int64 (
      json_object_get_int_member (wire, "sent_ts"), 1760000000000);

  parsed = mrtc_olm_media_key_content_parse (wire, &error);
  g_assert_no_error (error);
  fail_unless_equals_int (parsed->index, 1);
  fail_unless_equals_int (parsed->key_len, 16);
  fail_unless (memcmp (parsed->key, test_key, 16) == 0);
  fail_unless_equals_string (parsed->room_id, ROOM);
  fail_unless_equals_string (parsed->claimed_device_id, "DEV");
  fail_unless_equals_string (parsed->member_id, "member-uuid");
  fail_unless_equals_int64 (parsed->sent_ts, 1760000000000);
}

GST_END_TEST;

GST_START_TEST (test_content_variants_and_malformed)
{
  const gchar *ok[] = {
    /* unpadded, base64url, no member id / sent_ts, index as 3.0 */
    "{\"keys\":{\"index\":0,\"key\":\"AAECAwQFBgcICQoLDA0O/w\"},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
    "{\"keys\":{\"index\":255,\"key\":\"AAECAwQFBgcICQoLDA0O_w\"},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"},"
    "\"sent_ts\":5}",
    "{\"keys\":{\"index\":3.0,\"key\":\"AAECAwQFBgcICQoLDA0O/w==\"},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
  };
  const gchar *bad[] = {
    "{}",
    /* keys as the legacy array */
    "{\"keys\":[{\"index\":0,\"key\":\"AAECAwQFBgcICQoLDA0O/w\"}],"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
    "{\"keys\":{\"index\":0,\"key\":\"AAECAwQFBgcICQoLDA0O/w\"},"
    "\"member\":{\"claimed_device_id\":\"D\"}}",
    "{\"keys\":{\"index\":0,\"key\":\"AAECAwQFBgcICQoLDA0O/w\"},"
    "\"room_id\":\"!call:hs\"}",
    "{\"keys\":{\"index\":0,\"key\":\"AAECAwQFBgcICQoLDA0O/w\"},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":7}}",
    "{\"keys\":{\"index\":\"0\",\"key\":\"AAECAwQFBgcICQoLDA0O/w\"},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
    "{\"keys\":{\"index\":256,\"key\":\"AAECAwQFBgcICQoLDA0O/w\"},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
    "{\"keys\":{\"index\":-1,\"key\":\"AAECAwQFBgcICQoLDA0O/w\"},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
    "{\"keys\":{\"index\":1.5,\"key\":\"AAECAwQFBgcICQoLDA0O/w\"},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
    "{\"keys\":{\"index\":0,\"key\":\"not base64!\"},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
    "{\"keys\":{\"index\":0,\"key\":\"\"},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
    "{\"keys\":{\"index\":0},"
    "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
    /* 33 bytes */
    "{\"keys\":{\"index\":0,\"key\":"
    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "\"},\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (ok); i++) {
    g_autoptr (JsonObject) o = parse_json (ok[i]);
    g_autoptr (MrtcOlmMediaKeyContent) c = NULL;
    GError *error = NULL;

    c = mrtc_olm_media_key_content_parse (o, &error);
    g_assert_no_error (error);
    fail_unless (memcmp (c->key, test_key, 16) == 0, "variant %u", i);
  }
  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (JsonObject) o = parse_json (bad[i]);
    GError *error = NULL;

    fail_unless (mrtc_olm_media_key_content_parse (o, &error) == NULL,
        "malformed %u accepted", i);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    g_clear_error (&error);
  }
}

GST_END_TEST;

GST_START_TEST (test_rtc_backend_identity)
{
  g_autofree gchar *a = mrtc_olm_rtc_backend_identity (
      "@alice:localhost:8448", "ALICEDEV", "c0ffee-uuid");
  g_autofree gchar *b = mrtc_olm_rtc_backend_identity ("@b\xc3\xa9"
                                                       "a:hs",
      "D\"Q", "x\ny");

  /* Computed independently: unpadded base64 of SHA-256 of
   * JSON.stringify([user, device, member id]). */
  fail_unless_equals_string (a, "iBJYO2L1ANA9orFeCALLDLQYWnKvAxjAe4NP78Wsx8U");
  fail_unless_equals_string (b, "Z9Cz7U+uqGD4J5y/o9fUzmpCDEnM1yiXlmba6d7XaOo");
}

GST_END_TEST;

static GPtrArray *
members_new (const gchar *first, ...)
{
  GPtrArray *members
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  va_list args;
  const gchar *spec;

  /* Each member as "user|device|created_ts". */
  va_start (args, first);
  for (spec = first; spec != NULL; spec = va_arg (args, const gchar *)) {
    g_auto (GStrv) parts = g_strsplit (spec, "|", 3);
    g_autofree gchar *identity = g_strdup_printf ("%s:%s", parts[0], parts[1]);

    g_ptr_array_add (
        members, mrtc_olm_member_new (parts[0], parts[1], identity, identity,
                     g_ascii_strtoll (parts[2], NULL, 10)));
  }
  va_end (args);
  return members;
}

/* Pops the next action and checks its kind, index and target devices
 * (comma-separated "user:device", in order). */
static MrtcOlmMediaKeyAction *
expect_action (MrtcOlmMediaKeyManager *m, MrtcOlmMediaKeyActionKind kind,
    guint index, const gchar *targets)
{
  MrtcOlmMediaKeyAction *action = mrtc_olm_media_key_manager_pop_action (m);

  fail_unless (action != NULL, "no action, expected index %u", index);
  fail_unless_equals_int (action->kind, kind);
  fail_unless_equals_int (action->index, index);
  if (kind == MRTC_OLM_MEDIA_KEY_ACTION_SEND) {
    GString *got = g_string_new (NULL);
    guint i;

    for (i = 0; i < action->targets->len; i++) {
      MrtcOlmMember *t = g_ptr_array_index (action->targets, i);

      g_string_append_printf (got, "%s%s", i ? "," : "", t->identity);
    }
    fail_unless_equals_string (got->str, targets);
    g_string_free (got, TRUE);
  }
  return action;
}

static void
expect_no_action (MrtcOlmMediaKeyManager *m)
{
  MrtcOlmMediaKeyAction *action = mrtc_olm_media_key_manager_pop_action (m);

  fail_unless (
      action == NULL, "unexpected action index %u", action ? action->index : 0);
}

GST_START_TEST (test_rotation_policy)
{
  g_autoptr (MrtcOlmMediaKeyManager) m
      = mrtc_olm_media_key_manager_new ("@me:hs", "ME", fake_clock, NULL);
  g_autoptr (GPtrArray) members = NULL;
  MrtcOlmMediaKeyAction *a, *sent;
  guint8 key0[16];
  guint i;

  /* Join: key 0 used at once, sent to everyone but us. */
  fake_now = 1000;
  members = members_new ("@me:hs|ME|1", "@b:hs|B|1", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  a = expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_USE, 0, NULL);
  memcpy (key0, a->key, 16);
  mrtc_olm_media_key_action_free (a);
  a = expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 0, "@b:hs:B");
  fail_unless (memcmp (a->key, key0, 16) == 0);
  mrtc_olm_media_key_action_free (a);
  expect_no_action (m);
  fail_unless_equals_int64 (mrtc_olm_media_key_manager_next_deadline (m), -1);

  /* Same members again: nothing. */
  mrtc_olm_media_key_manager_update_members (m, members);
  expect_no_action (m);

  /* A joiner within the grace period gets the current key only. */
  fake_now = 3000;
  g_ptr_array_unref (members);
  members = members_new ("@me:hs|ME|1", "@b:hs|B|1", "@c:hs|C|2", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  a = expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 0, "@c:hs:C");
  fail_unless (memcmp (a->key, key0, 16) == 0);
  mrtc_olm_media_key_action_free (a);
  expect_no_action (m);

  /* A leave: a new key to everyone left, used 1 s later. */
  fake_now = 5000;
  g_ptr_array_unref (members);
  members = members_new ("@me:hs|ME|1", "@c:hs|C|2", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  sent = expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 1, "@c:hs:C");
  fail_if (memcmp (sent->key, key0, 16) == 0);
  expect_no_action (m);
  fail_unless_equals_int64 (mrtc_olm_media_key_manager_next_deadline (m), 6000);
  fake_now = 5999;
  mrtc_olm_media_key_manager_tick (m);
  expect_no_action (m);
  fake_now = 6000;
  mrtc_olm_media_key_manager_tick (m);
  a = expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_USE, 1, NULL);
  fail_unless (memcmp (a->key, sent->key, 16) == 0);
  mrtc_olm_media_key_action_free (a);
  mrtc_olm_media_key_action_free (sent);
  fail_unless_equals_int64 (mrtc_olm_media_key_manager_next_deadline (m), -1);

  /* A joiner after the grace period: rotate to all. */
  fake_now = 5000 + 10000;
  g_ptr_array_unref (members);
  members = members_new ("@me:hs|ME|1", "@c:hs|C|2", "@d:hs|D|3", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 2, "@c:hs:C,@d:hs:D"));
  expect_no_action (m);

  /* C re-sends its membership (new created_ts) 1 s later: a re-join, which
   * within the grace period only re-shares the current key with C. */
  fake_now += 1000;
  mrtc_olm_media_key_manager_tick (m);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_USE, 2, NULL));
  g_ptr_array_unref (members);
  members = members_new ("@me:hs|ME|1", "@c:hs|C|9", "@d:hs|D|3", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 2, "@c:hs:C"));
  expect_no_action (m);

  /* key_sent() pushes the use back to 1 s after the send completed. */
  fake_now += 1000;
  mrtc_olm_media_key_manager_tick (m);
  while ((a = mrtc_olm_media_key_manager_pop_action (m)) != NULL)
    mrtc_olm_media_key_action_free (a);
  g_ptr_array_unref (members);
  members = members_new ("@me:hs|ME|1", "@c:hs|C|9", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 3, "@c:hs:C"));
  fake_now += 400;
  mrtc_olm_media_key_manager_key_sent (m, 3);
  fail_unless_equals_int64 (
      mrtc_olm_media_key_manager_next_deadline (m), fake_now + 1000);
  fake_now += 999;
  mrtc_olm_media_key_manager_tick (m);
  expect_no_action (m);
  fake_now += 1;
  mrtc_olm_media_key_manager_tick (m);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_USE, 3, NULL));

  /* Everyone else left: the new key is used at once. */
  g_ptr_array_unref (members);
  members = members_new ("@me:hs|ME|1", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_USE, 4, NULL));
  expect_no_action (m);

  /* The index wraps modulo 256: E joins (gets the current key) and leaves
   * (a rotation), 300 times. */
  g_ptr_array_unref (members);
  members = members_new ("@me:hs|ME|1", "@d:hs|D|3", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 4, "@d:hs:D"));
  for (i = 0; i < 300; i++) {
    g_autofree gchar *e = g_strdup_printf ("@e:hs|E|%u", 10 + i);

    fake_now += 100;
    g_ptr_array_unref (members);
    members = members_new ("@me:hs|ME|1", "@d:hs|D|3", e, NULL);
    mrtc_olm_media_key_manager_update_members (m, members);
    mrtc_olm_media_key_action_free (expect_action (
        m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, (4 + i) % 256, "@e:hs:E"));
    g_ptr_array_unref (members);
    members = members_new ("@me:hs|ME|1", "@d:hs|D|3", NULL);
    mrtc_olm_media_key_manager_update_members (m, members);
    mrtc_olm_media_key_action_free (expect_action (
        m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, (5 + i) % 256, "@d:hs:D"));
    expect_no_action (m);
  }
}

GST_END_TEST;

GST_START_TEST (test_rotation_participant_limit)
{
  g_autoptr (MrtcOlmMediaKeyManager) m
      = mrtc_olm_media_key_manager_new ("@me:hs", "ME", fake_clock, NULL);
  g_autoptr (GPtrArray) members = NULL;

  mrtc_olm_media_key_manager_set_rotation_participant_limit (m, 3);
  fake_now = 0;
  members = members_new ("@me:hs|ME|1", "@b:hs|B|1", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_USE, 0, NULL));
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 0, "@b:hs:B"));

  /* At the limit: a late joiner gets the old key, no rotation. */
  fake_now = 60000;
  g_ptr_array_unref (members);
  members = members_new ("@me:hs|ME|1", "@b:hs|B|1", "@c:hs|C|2", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 0, "@c:hs:C"));
  expect_no_action (m);

  /* Below the limit again: B's leave rotates. */
  g_ptr_array_unref (members);
  members = members_new ("@me:hs|ME|1", "@c:hs|C|2", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 1, "@c:hs:C"));
}

GST_END_TEST;

static MrtcOlmDecrypted *
fake_decrypted (const gchar *user, const gchar *device, JsonObject *content)
{
  MrtcOlmDecrypted *d = g_new0 (MrtcOlmDecrypted, 1);

  d->type = g_strdup (MRTC_OLM_MEDIA_KEY_EVENT_TYPE);
  d->content = json_object_ref (content);
  d->sender = g_strdup (user);
  d->sender_device = mrtc_olm_device_new (user, device, "curve", "ed");
  return d;
}

static void
expect_delivery (MrtcOlmMediaKeyReceiver *r, const gchar *identity, guint index,
    const guint8 *key)
{
  g_autoptr (MrtcOlmMediaKeyDelivery) d
      = mrtc_olm_media_key_receiver_pop_delivery (r);

  fail_unless (d != NULL, "no delivery for %s", identity);
  fail_unless_equals_string (d->identity, identity);
  fail_unless_equals_int (d->index, index);
  fail_unless_equals_int (d->key_len, 16);
  fail_unless (memcmp (d->key, key, 16) == 0);
}

GST_START_TEST (test_receiver_binding)
{
  g_autoptr (MrtcOlmMediaKeyReceiver) r
      = mrtc_olm_media_key_receiver_new (ROOM, fake_clock, NULL);
  g_autoptr (GPtrArray) members = members_new ("@b:hs|B|1", NULL);
  g_autoptr (JsonObject) c_b = mrtc_olm_media_key_content_build (
      ROOM, 4, test_key, 16, "B", "mb", 100);
  MrtcOlmDecrypted *d;
  GError *error = NULL;
  guint dropped = 0;

  fake_now = 0;
  mrtc_olm_media_key_receiver_update_members (r, members);

  /* From the member's verified device: delivered by identity and index. */
  d = fake_decrypted ("@b:hs", "B", c_b);
  fail_unless (mrtc_olm_media_key_receiver_receive (r, d, &error));
  g_assert_no_error (error);
  mrtc_olm_decrypted_free (d);
  expect_delivery (r, "@b:hs:B", 4, test_key);

  /* Claiming another device than the Olm-verified one: refused. */
  d = fake_decrypted ("@b:hs", "B2", c_b);
  fail_if (mrtc_olm_media_key_receiver_receive (r, d, &error));
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH);
  g_clear_error (&error);
  mrtc_olm_decrypted_free (d);
  fail_unless_equals_int (
      mrtc_olm_media_key_receiver_get_dropped (r), ++dropped);

  /* Another room: refused. */
  {
    g_autoptr (JsonObject) other = mrtc_olm_media_key_content_build (
        "!other:hs", 4, test_key, 16, "B", "mb", 100);

    d = fake_decrypted ("@b:hs", "B", other);
    fail_if (mrtc_olm_media_key_receiver_receive (r, d, &error));
    g_clear_error (&error);
    mrtc_olm_decrypted_free (d);
    fail_unless_equals_int (
        mrtc_olm_media_key_receiver_get_dropped (r), ++dropped);
  }

  /* Another event type or malformed content: refused. */
  {
    g_autoptr (JsonObject) empty = json_object_new ();

    d = fake_decrypted ("@b:hs", "B", empty);
    fail_if (mrtc_olm_media_key_receiver_receive (r, d, &error));
    g_clear_error (&error);
    g_free (d->type);
    d->type = g_strdup ("m.room_key");
    fail_if (mrtc_olm_media_key_receiver_receive (r, d, &error));
    g_clear_error (&error);
    mrtc_olm_decrypted_free (d);
    dropped += 2;
  }

  /* Unencrypted keys are never used. */
  mrtc_olm_media_key_receiver_reject_unencrypted (r, "@b:hs");
  fail_unless_equals_int (
      mrtc_olm_media_key_receiver_get_dropped (r), ++dropped);
  fail_unless (mrtc_olm_media_key_receiver_pop_delivery (r) == NULL);

  /* Keys are ordered by arrival, not by the sender's sent_ts (as
   * matrix-js-sdk 43): a key for an index already delivered that arrives
   * later replaces it, whatever its sent_ts says. */
  {
    g_autoptr (JsonObject) old = mrtc_olm_media_key_content_build (
        ROOM, 4, test_key, 16, "B", "mb", 50);

    fake_now = 1;
    d = fake_decrypted ("@b:hs", "B", old);
    fail_unless (mrtc_olm_media_key_receiver_receive (r, d, &error));
    mrtc_olm_decrypted_free (d);
    expect_delivery (r, "@b:hs:B", 4, test_key);
    fail_unless_equals_int (
        mrtc_olm_media_key_receiver_get_dropped (r), dropped);
    fake_now = 0;
  }

  /* Keys of a device that is not a member yet are held, then delivered
   * when its membership arrives. */
  {
    g_autoptr (JsonObject) c_c = mrtc_olm_media_key_content_build (
        ROOM, 0, test_key, 16, "C", "mc", 100);

    d = fake_decrypted ("@c:hs", "C", c_c);
    fail_unless (mrtc_olm_media_key_receiver_receive (r, d, &error));
    mrtc_olm_decrypted_free (d);
    fail_unless (mrtc_olm_media_key_receiver_pop_delivery (r) == NULL);
    fail_unless_equals_int (mrtc_olm_media_key_receiver_get_held (r), 1);
    fake_now = 5000;
    g_ptr_array_unref (members);
    members = members_new ("@b:hs|B|1", "@c:hs|C|2", NULL);
    mrtc_olm_media_key_receiver_update_members (r, members);
    expect_delivery (r, "@c:hs:C", 0, test_key);
    fail_unless_equals_int (mrtc_olm_media_key_receiver_get_held (r), 0);

    /* ... but only briefly. */
    d = fake_decrypted ("@d:hs", "D", c_c);
    g_free (d->sender_device->device_id);
    d->sender_device->device_id = g_strdup ("C");
    g_free (d->sender);
    d->sender = g_strdup ("@d:hs");
    g_free (d->sender_device->user_id);
    d->sender_device->user_id = g_strdup ("@d:hs");
    fail_unless (mrtc_olm_media_key_receiver_receive (r, d, &error));
    mrtc_olm_decrypted_free (d);
    fail_unless_equals_int (mrtc_olm_media_key_receiver_get_held (r), 1);
    fake_now = 5000 + 10001;
    mrtc_olm_media_key_receiver_tick (r);
    fail_unless_equals_int (mrtc_olm_media_key_receiver_get_held (r), 0);
    fail_unless_equals_int (
        mrtc_olm_media_key_receiver_get_dropped (r), ++dropped);
    g_ptr_array_unref (members);
    members = members_new ("@b:hs|B|1", "@c:hs|C|2", "@d:hs|C|3", NULL);
    mrtc_olm_media_key_receiver_update_members (r, members);
    fail_unless (mrtc_olm_media_key_receiver_pop_delivery (r) == NULL);
  }
}

GST_END_TEST;

/* The whole path with real Olm: Alice's key manager says what to send,
 * Alice Olm-encrypts it to Bob and Carol, they decrypt and bind it. */
GST_START_TEST (test_end_to_end_olm)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (MrtcOlmAccount) bob = olm_test_account_new ("@bob:hs", "BOB");
  g_autoptr (MrtcOlmAccount) carol
      = olm_test_account_new ("@carol:hs", "CAROL");
  g_autoptr (MrtcOlmMediaKeyManager) m
      = mrtc_olm_media_key_manager_new ("@alice:hs", "ALICE", fake_clock, NULL);
  g_autoptr (MrtcOlmMediaKeyReceiver) rb
      = mrtc_olm_media_key_receiver_new (ROOM, fake_clock, NULL);
  g_autoptr (GPtrArray) members = members_new (
      "@alice:hs|ALICE|1", "@bob:hs|BOB|1", "@carol:hs|CAROL|1", NULL);
  g_autoptr (MrtcOlmMediaKeyAction) use = NULL;
  g_autoptr (MrtcOlmMediaKeyAction) send = NULL;
  g_autoptr (GPtrArray) devices = g_ptr_array_new ();
  g_autoptr (JsonObject) content = NULL;
  g_autoptr (JsonObject) messages = NULL;
  g_autoptr (MrtcOlmDecrypted) at_bob = NULL;
  g_autoptr (MrtcOlmDecrypted) at_carol = NULL;
  GError *error = NULL;
  guint i;

  fake_now = 0;
  olm_test_establish (alice, bob);
  olm_test_establish (alice, carol);
  olm_test_learn_device (bob, alice);

  mrtc_olm_media_key_manager_update_members (m, members);
  use = mrtc_olm_media_key_manager_pop_action (m);
  send = mrtc_olm_media_key_manager_pop_action (m);
  fail_unless_equals_int (use->kind, MRTC_OLM_MEDIA_KEY_ACTION_USE);
  fail_unless_equals_int (send->kind, MRTC_OLM_MEDIA_KEY_ACTION_SEND);
  fail_unless_equals_int (send->targets->len, 2);
  for (i = 0; i < send->targets->len; i++) {
    MrtcOlmMember *t = g_ptr_array_index (send->targets, i);

    g_ptr_array_add (devices, (gpointer)mrtc_olm_account_lookup_device (
                                  alice, t->user_id, t->device_id));
  }
  content = mrtc_olm_media_key_content_build (ROOM, send->index, send->key,
      MRTC_OLM_MEDIA_KEY_LEN, "ALICE", "alice-member", 1234);
  messages = mrtc_olm_account_encrypt_to_devices (
      alice, devices, MRTC_OLM_MEDIA_KEY_EVENT_TYPE, content, NULL, &error);
  g_assert_no_error (error);

  /* The key bytes never travel in clear. */
  {
    g_autofree gchar *wire = mrtc_olm_json_object_to_string (messages);
    g_autofree gchar *b64 = g_base64_encode (send->key, 16);

    fail_unless (strstr (wire, b64) == NULL);
    fail_unless (strstr (wire, "encryption_keys") == NULL);
  }

  at_bob = mrtc_olm_account_decrypt_to_device (bob, "@alice:hs",
      json_object_get_object_member (
          json_object_get_object_member (messages, "@bob:hs"), "BOB"),
      &error);
  g_assert_no_error (error);
  mrtc_olm_media_key_receiver_update_members (rb, members);
  fail_unless (mrtc_olm_media_key_receiver_receive (rb, at_bob, &error));
  g_assert_no_error (error);
  expect_delivery (rb, "@alice:hs:ALICE", 0, use->key);

  /* Carol has not got Alice's device keys: the message is refused until
   * she has (nothing consumed meanwhile). */
  fail_unless (
      mrtc_olm_account_decrypt_to_device (carol, "@alice:hs",
          json_object_get_object_member (
              json_object_get_object_member (messages, "@carol:hs"), "CAROL"),
          &error)
      == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_UNKNOWN_DEVICE);
  g_clear_error (&error);
  olm_test_learn_device (carol, alice);
  at_carol = mrtc_olm_account_decrypt_to_device (carol, "@alice:hs",
      json_object_get_object_member (
          json_object_get_object_member (messages, "@carol:hs"), "CAROL"),
      &error);
  g_assert_no_error (error);
  fail_unless_equals_string (at_carol->type, MRTC_OLM_MEDIA_KEY_EVENT_TYPE);
}

GST_END_TEST;

/* Every log line (any level, including debug) and every error message of
 * the paths a key goes through, checked for the key's bytes. */
static GString *captured_logs;

static void
capture_log (const gchar *domain, GLogLevelFlags level, const gchar *message,
    gpointer user_data)
{
  g_string_append_printf (captured_logs, "%s\n", message);
}

static void
assert_key_absent (const gchar *text, const guint8 *key)
{
  g_autofree gchar *b64 = g_base64_encode (key, 16);
  g_autofree gchar *b64_unpadded = g_strndup (b64, 20);
  g_autofree gchar *hex = NULL;
  GString *h = g_string_new (NULL);
  guint i;

  for (i = 0; i < 16; i++)
    g_string_append_printf (h, "%02x", key[i]);
  hex = g_string_free (h, FALSE);
  fail_if (strstr (text, b64_unpadded) != NULL, "key (base64) in logs");
  fail_if (g_strstr_len (text, -1, hex) != NULL, "key (hex) in logs");
}

GST_START_TEST (test_no_key_bytes_in_logs)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (MrtcOlmAccount) bob = olm_test_account_new ("@bob:hs", "BOB");
  g_autoptr (MrtcOlmMediaKeyReceiver) r
      = mrtc_olm_media_key_receiver_new (ROOM, fake_clock, NULL);
  g_autoptr (GPtrArray) members = members_new ("@alice:hs|ALICE|1", NULL);
  g_autoptr (JsonObject) content = NULL;
  g_autoptr (JsonObject) old = NULL;
  g_autoptr (JsonObject) encrypted = NULL;
  g_autoptr (MrtcOlmDecrypted) decrypted = NULL;
  MrtcOlmMediaKeyDelivery *delivery;
  MrtcOlmDecrypted *fake;
  GError *error = NULL;
  guint handler;
  guint8 key[16];

  captured_logs = g_string_new (NULL);
  handler
      = g_log_set_handler ("matrixrtc", G_LOG_LEVEL_MASK, capture_log, NULL);
  mrtc_olm_random_bytes (key, sizeof (key));
  fake_now = 0;

  olm_test_establish (alice, bob);
  olm_test_learn_device (bob, alice);
  content
      = mrtc_olm_media_key_content_build (ROOM, 9, key, 16, "ALICE", "m", 100);
  encrypted = mrtc_olm_account_encrypt_to_device (alice,
      mrtc_olm_account_lookup_device (alice, "@bob:hs", "BOB"),
      MRTC_OLM_MEDIA_KEY_EVENT_TYPE, content, &error);
  g_assert_no_error (error);
  decrypted = mrtc_olm_account_decrypt_to_device (
      bob, "@alice:hs", encrypted, &error);
  g_assert_no_error (error);

  /* Held (no members yet), delivered, then outdated and refused copies. */
  fail_unless (mrtc_olm_media_key_receiver_receive (r, decrypted, &error));
  mrtc_olm_media_key_receiver_update_members (r, members);
  delivery = mrtc_olm_media_key_receiver_pop_delivery (r);
  fail_unless (delivery != NULL && memcmp (delivery->key, key, 16) == 0);
  mrtc_olm_media_key_delivery_free (delivery);
  old = mrtc_olm_media_key_content_build (ROOM, 9, key, 16, "ALICE", "m", 1);
  fake = fake_decrypted ("@alice:hs", "ALICE", old);
  mrtc_olm_media_key_receiver_receive (r, fake, &error);
  g_clear_error (&error);
  g_free (fake->sender_device->device_id);
  fake->sender_device->device_id = g_strdup ("OTHER");
  fail_if (mrtc_olm_media_key_receiver_receive (r, fake, &error));
  g_string_append_printf (captured_logs, "%s\n", error->message);
  g_clear_error (&error);
  g_free (fake->sender_device->device_id);
  fake->sender_device->device_id = g_strdup ("ALICE");
  g_free (fake->sender);
  fake->sender = g_strdup ("@zed:hs");
  g_free (fake->sender_device->user_id);
  fake->sender_device->user_id = g_strdup ("@zed:hs");
  mrtc_olm_media_key_receiver_receive (r, fake, NULL);
  fake_now = 60000;
  mrtc_olm_media_key_receiver_tick (r);
  mrtc_olm_media_key_receiver_reject_unencrypted (r, "@zed:hs");
  mrtc_olm_decrypted_free (fake);

  /* A replay of the Olm message fails; its error message is clean too. */
  fail_unless (
      mrtc_olm_account_decrypt_to_device (bob, "@alice:hs", encrypted, &error)
      == NULL);
  g_string_append_printf (captured_logs, "%s\n", error->message);
  g_clear_error (&error);

  g_log_remove_handler ("matrixrtc", handler);
  fail_unless (strstr (captured_logs->str, "held media key") != NULL,
      "debug output was not captured: %s", captured_logs->str);
  assert_key_absent (captured_logs->str, key);
  g_string_free (captured_logs, TRUE);
}

GST_END_TEST;

/* Findings 7 and 11: numbers out of range are refused (or ignored) rather
 * than cast, and a missing member id is written as null. */
GST_START_TEST (test_content_ranges_and_null_member)
{
  const gchar *bad_index[] = { "1e300", "-1e300", "9007199254740993.0", "1e19",
    "99999999999999999999" };
  const gchar *odd_ts[] = { "-1e300", "1e300", "1.5", "\"5\"", "null" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (bad_index); i++) {
    g_autofree gchar *text = g_strdup_printf (
        "{\"keys\":{\"index\":%s,\"key\":\"AAECAwQFBgcICQoLDA0O/w\"},"
        "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"}}",
        bad_index[i]);
    g_autoptr (JsonObject) o = parse_json (text);
    GError *error = NULL;

    fail_unless (mrtc_olm_media_key_content_parse (o, &error) == NULL,
        "index %s accepted", bad_index[i]);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    g_clear_error (&error);
  }
  for (i = 0; i < G_N_ELEMENTS (odd_ts); i++) {
    g_autofree gchar *text = g_strdup_printf (
        "{\"keys\":{\"index\":4.0,\"key\":\"AAECAwQFBgcICQoLDA0O/w\"},"
        "\"room_id\":\"!call:hs\",\"member\":{\"claimed_device_id\":\"D\"},"
        "\"sent_ts\":%s}",
        odd_ts[i]);
    g_autoptr (JsonObject) o = parse_json (text);
    g_autoptr (MrtcOlmMediaKeyContent) c = NULL;
    GError *error = NULL;

    c = mrtc_olm_media_key_content_parse (o, &error);
    g_assert_no_error (error);
    fail_unless_equals_int (c->index, 4);
    fail_unless_equals_int64 (c->sent_ts, 0);
  }

  /* NULL member id: JSON.stringify() writes null (and undefined) as null. */
  {
    g_autofree gchar *id = mrtc_olm_rtc_backend_identity ("@a:hs", "DEV", NULL);
    const gchar *json = "[\"@a:hs\",\"DEV\",null]";
    guint8 digest[32];
    gsize digest_len = sizeof (digest);
    GChecksum *checksum = g_checksum_new (G_CHECKSUM_SHA256);
    g_autofree gchar *expected = NULL;

    g_checksum_update (checksum, (const guchar *)json, strlen (json));
    g_checksum_get_digest (checksum, digest, &digest_len);
    g_checksum_free (checksum);
    expected = g_base64_encode (digest, digest_len);
    expected[43] = '\0';
    fail_unless_equals_string (id, expected);
  }
  {
    g_autoptr (JsonObject) content = mrtc_olm_media_key_content_build (
        ROOM, 1, test_key, 16, "DEV", NULL, 5);
    g_autofree gchar *text = mrtc_olm_json_object_to_string (content);
    g_autoptr (JsonObject) wire = parse_json (text);
    g_autoptr (MrtcOlmMediaKeyContent) c = NULL;
    GError *error = NULL;

    fail_unless (strstr (text, "\"id\":null") != NULL, "%s", text);
    c = mrtc_olm_media_key_content_parse (wire, &error);
    g_assert_no_error (error);
    fail_unless (c->member_id == NULL);
  }
}

GST_END_TEST;

static void
receive_key (MrtcOlmMediaKeyReceiver *r, const gchar *user, const gchar *device,
    guint index, const guint8 *key, gint64 sent_ts, gboolean with_sent_ts)
{
  g_autoptr (JsonObject) c = mrtc_olm_media_key_content_build (
      ROOM, index, key, 16, device, "m", sent_ts);
  MrtcOlmDecrypted *d;
  GError *error = NULL;

  if (!with_sent_ts)
    json_object_remove_member (c, "sent_ts");
  d = fake_decrypted (user, device, c);
  fail_unless (mrtc_olm_media_key_receiver_receive (r, d, &error));
  g_assert_no_error (error);
  mrtc_olm_decrypted_free (d);
}

/* Finding 5: keys are ordered by their arrival (as matrix-js-sdk 43's
 * OutdatedKeyFilter), not by the sender's sent_ts; finding 9: the ordering
 * state is per device and forgotten when the member leaves. */
GST_START_TEST (test_receiver_arrival_order)
{
  g_autoptr (MrtcOlmMediaKeyReceiver) r
      = mrtc_olm_media_key_receiver_new (ROOM, fake_clock, NULL);
  g_autoptr (GPtrArray) members = members_new ("@b:hs|B|1", NULL);
  g_autoptr (GPtrArray) none = members_new (NULL);
  guint8 k1[16], k2[16], k3[16];

  memset (k1, 1, 16);
  memset (k2, 2, 16);
  memset (k3, 3, 16);
  fake_now = 100;
  mrtc_olm_media_key_receiver_update_members (r, members);

  /* A re-sent key with a lower sent_ts, then one without sent_ts: each is
   * newer by arrival, so each is delivered. */
  receive_key (r, "@b:hs", "B", 0, k1, 5000, TRUE);
  expect_delivery (r, "@b:hs:B", 0, k1);
  fake_now = 200;
  receive_key (r, "@b:hs", "B", 0, k2, 10, TRUE);
  expect_delivery (r, "@b:hs:B", 0, k2);
  fake_now = 300;
  receive_key (r, "@b:hs", "B", 0, k3, 0, FALSE);
  expect_delivery (r, "@b:hs:B", 0, k3);
  fail_unless_equals_int (mrtc_olm_media_key_receiver_get_dropped (r), 0);

  /* C's key for index 1 arrives before C is a member (held) and is
   * delivered when the membership shows up; C's next key for index 1, with
   * a lower sent_ts, arrives later and replaces it. */
  fake_now = 400;
  receive_key (r, "@c:hs", "C", 1, k1, 99999, TRUE);
  fail_unless_equals_int (mrtc_olm_media_key_receiver_get_held (r), 1);
  {
    g_autoptr (GPtrArray) with_c = members_new ("@b:hs|B|1", "@c:hs|C|1", NULL);
    MrtcOlmMediaKeyDelivery *d;

    fake_now = 500;
    mrtc_olm_media_key_receiver_update_members (r, with_c);
    expect_delivery (r, "@c:hs:C", 1, k1);
    fake_now = 600;
    receive_key (r, "@c:hs", "C", 1, k2, 1, TRUE);
    expect_delivery (r, "@c:hs:C", 1, k2);
    fail_unless ((d = mrtc_olm_media_key_receiver_pop_delivery (r)) == NULL);
  }

  /* Held keys delivered later keep their arrival order. */
  {
    g_autoptr (GPtrArray) with_d = members_new ("@b:hs|B|1", "@d:hs|D|1", NULL);

    fake_now = 700;
    receive_key (r, "@d:hs", "D", 2, k1, 50, TRUE);
    fake_now = 800;
    receive_key (r, "@d:hs", "D", 2, k2, 10, TRUE);
    fake_now = 900;
    mrtc_olm_media_key_receiver_update_members (r, with_d);
    expect_delivery (r, "@d:hs:D", 2, k1);
    expect_delivery (r, "@d:hs:D", 2, k2);
    fail_unless (mrtc_olm_media_key_receiver_pop_delivery (r) == NULL);
  }

  /* Ordering state is keyed by device, whatever member.id the sender
   * claims (a sender cannot sidestep it, nor grow it, with new ids), and is
   * forgotten when the member leaves. (The fake clock is set back to make
   * a key arrive "earlier" than the last one delivered.) */
  {
    g_autoptr (JsonObject) c = mrtc_olm_media_key_content_build (
        ROOM, 0, k1, 16, "B", "another-member-id", 1);
    MrtcOlmDecrypted *d = fake_decrypted ("@b:hs", "B", c);

    fake_now = 50;
    fail_unless (mrtc_olm_media_key_receiver_receive (r, d, NULL));
    mrtc_olm_decrypted_free (d);
    fail_unless (mrtc_olm_media_key_receiver_pop_delivery (r) == NULL);
    fail_unless_equals_int (mrtc_olm_media_key_receiver_get_dropped (r), 1);

    fake_now = 1000;
    mrtc_olm_media_key_receiver_update_members (r, none);
    fake_now = 40;
    mrtc_olm_media_key_receiver_update_members (r, members);
    receive_key (r, "@b:hs", "B", 0, k1, 0, FALSE);
    expect_delivery (r, "@b:hs:B", 0, k1);
  }
}

GST_END_TEST;

/* Finding 6: a failed key send un-marks its targets, and the key is sent to
 * them again (after a back-off, or on the next member update). */
GST_START_TEST (test_failed_send_retried)
{
  g_autoptr (MrtcOlmMediaKeyManager) m
      = mrtc_olm_media_key_manager_new ("@me:hs", "ME", fake_clock, NULL);
  g_autoptr (GPtrArray) members
      = members_new ("@me:hs|ME|1", "@b:hs|B|1", "@c:hs|C|1", NULL);
  g_autoptr (GPtrArray) failed = members_new ("@c:hs|C|1", NULL);
  MrtcOlmMediaKeyAction *a;
  guint8 key0[16];

  fake_now = 1000;
  mrtc_olm_media_key_manager_update_members (m, members);
  a = expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_USE, 0, NULL);
  memcpy (key0, a->key, 16);
  mrtc_olm_media_key_action_free (a);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 0, "@b:hs:B,@c:hs:C"));

  /* C could not be reached: retried 2 s later, to C only, same key. */
  mrtc_olm_media_key_manager_key_send_failed (m, 0, failed);
  fail_unless_equals_int64 (mrtc_olm_media_key_manager_next_deadline (m), 3000);
  fake_now = 2999;
  mrtc_olm_media_key_manager_tick (m);
  expect_no_action (m);
  fake_now = 3000;
  mrtc_olm_media_key_manager_tick (m);
  a = expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 0, "@c:hs:C");
  fail_unless (memcmp (a->key, key0, 16) == 0);
  mrtc_olm_media_key_action_free (a);
  fail_unless_equals_int64 (mrtc_olm_media_key_manager_next_deadline (m), -1);

  /* The whole request failed again: everyone, after a longer back-off. */
  mrtc_olm_media_key_manager_key_send_failed (m, 0, NULL);
  fail_unless_equals_int64 (mrtc_olm_media_key_manager_next_deadline (m), 7000);

  /* A member update before that re-sends at once (within the grace period:
   * the current key, no rotation). */
  fake_now = 4000;
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 0, "@b:hs:B,@c:hs:C"));
  expect_no_action (m);
  /* ... and the retry then has nothing left to do. */
  fake_now = 7000;
  mrtc_olm_media_key_manager_tick (m);
  expect_no_action (m);

  /* Past the grace period, re-sending to a member we failed to reach is
   * no reason to rotate: the current key, to C only. */
  fake_now = 20000;
  mrtc_olm_media_key_manager_key_send_failed (m, 0, failed);
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 0, "@c:hs:C"));
  expect_no_action (m);

  /* But if C leaves while the key was not (known to be) sent to it, that is
   * a leave like any other: the failed request may have reached C. */
  mrtc_olm_media_key_manager_key_send_failed (m, 0, failed);
  g_ptr_array_unref (members);
  members = members_new ("@me:hs|ME|1", "@b:hs|B|1", NULL);
  mrtc_olm_media_key_manager_update_members (m, members);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_SEND, 1, "@b:hs:B"));
  expect_no_action (m);

  /* A failure reported for a key that was rotated since is ignored. */
  mrtc_olm_media_key_manager_key_send_failed (m, 0, NULL);
  fake_now = 100000;
  mrtc_olm_media_key_manager_tick (m);
  mrtc_olm_media_key_action_free (
      expect_action (m, MRTC_OLM_MEDIA_KEY_ACTION_USE, 1, NULL));
  expect_no_action (m);
}

GST_END_TEST;

static Suite *
olmmediakeys_suite (void)
{
  Suite *s = suite_create ("olmmediakeys");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_content_round_trip);
  tcase_add_test (tc, test_content_variants_and_malformed);
  tcase_add_test (tc, test_rtc_backend_identity);
  tcase_add_test (tc, test_rotation_policy);
  tcase_add_test (tc, test_rotation_participant_limit);
  tcase_add_test (tc, test_receiver_binding);
  tcase_add_test (tc, test_end_to_end_olm);
  tcase_add_test (tc, test_no_key_bytes_in_logs);
  tcase_add_test (tc, test_content_ranges_and_null_member);
  tcase_add_test (tc, test_receiver_arrival_order);
  tcase_add_test (tc, test_failed_send_retried);
  return s;
}

GST_CHECK_MAIN (olmmediakeys);
