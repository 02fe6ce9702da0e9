/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Unit tests of ext/olm against hostile peers and servers (the findings of
 * the security review of ext/olm): deeply nested and oversized payloads,
 * identity keys of devices that leave and come back, replayed pre-key
 * messages made with a fallback key, Megolm sessions sharing an id, and the
 * bounds on peer-driven state. Some messages are made with libolm directly
 * (through the account's private fields) to send what our own encoder
 * never would. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <string.h>

#include "olmtestutil.h"
#include "mrtcolmprivate.h"

#define ROOM "!room:hs"

static gchar *
nested_arrays (guint depth)
{
  GString *s = g_string_sized_new (depth * 2 + 1);
  guint i;

  for (i = 0; i < depth; i++)
    g_string_append_c (s, '[');
  for (i = 0; i < depth; i++)
    g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static void
assert_json_refused (const gchar *text, gssize len)
{
  GError *error = NULL;
  JsonObject *o = mrtc_olm_json_object_from_string (text, len, &error);

  fail_unless (o == NULL, "accepted: %.60s", text);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
  g_clear_error (&error);
  o = mrtc_olm_json_payload_from_string (
      text, len < 0 ? strlen (text) : (gsize)len, &error);
  fail_unless (o == NULL, "accepted as payload: %.60s", text);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
  g_clear_error (&error);
}

static void
assert_json_accepted (const gchar *text, gboolean as_payload)
{
  GError *error = NULL;
  JsonObject *o = mrtc_olm_json_object_from_string (text, -1, &error);

  g_assert_no_error (error);
  fail_unless (o != NULL);
  json_object_unref (o);
  o = mrtc_olm_json_payload_from_string (text, strlen (text), &error);
  if (as_payload) {
    g_assert_no_error (error);
    fail_unless (o != NULL);
    json_object_unref (o);
  } else {
    fail_unless (o == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    g_clear_error (&error);
  }
}

static gchar *
object_nested (guint depth)
{
  g_autofree gchar *inner = nested_arrays (depth - 1);

  return g_strdup_printf ("{\"a\":%s}", inner);
}

GST_START_TEST (test_json_guard)
{
  g_autofree gchar *deep = nested_arrays (100000);
  g_autofree gchar *deep_obj = object_nested (100000);
  g_autofree gchar *ok64 = object_nested (MRTC_OLM_JSON_MAX_DEPTH);
  g_autofree gchar *bad65 = object_nested (MRTC_OLM_JSON_MAX_DEPTH + 1);
  g_autofree gchar *ok_any = object_nested (MRTC_OLM_JSON_MAX_DEPTH_ANY);
  g_autofree gchar *bad_any = object_nested (MRTC_OLM_JSON_MAX_DEPTH_ANY + 1);
  g_autofree gchar *brackets_in_string = NULL;
  GString *s = g_string_new ("{\"a\":\"");
  GError *error = NULL;
  guint i;

  /* 100,000 levels used to exhaust the stack inside json-glib. */
  assert_json_refused (deep_obj, -1);
  assert_json_refused (deep, -1);
  /* The limits are exact: 64 levels (the object included) for decrypted
   * payloads, 2048 for anything else (a whole /sync response included). */
  assert_json_accepted (ok64, TRUE);
  assert_json_accepted (bad65, FALSE);
  assert_json_accepted (ok_any, FALSE);
  assert_json_refused (bad_any, -1);

  /* Brackets inside strings (even after escaped quotes) do not count. */
  for (i = 0; i < 3000; i++)
    g_string_append (s, "[{\\\"");
  g_string_append (s, "\"}");
  brackets_in_string = g_string_free (s, FALSE);
  assert_json_accepted (brackets_in_string, TRUE);

  /* What json-glib would accept beyond strict JSON could hide brackets
   * from the scan: refused. */
  assert_json_refused ("{\"a\":/* \" */[1]}", -1);
  assert_json_refused ("{\"a\":['x']}", -1);

  /* NUL characters: json-glib would cut the string there (finding 14). */
  assert_json_refused ("{\"a\":\"x\\u0000y\"}", -1);
  assert_json_refused ("{\"a\":\"x\0y\"}", 12);
  assert_json_accepted ("{\"a\":\"x\\\\u0000y\"}", TRUE);
  assert_json_accepted ("{\"a\":\"x\\u0001y\"}", TRUE);

  /* Payloads: at most 64 KiB. */
  fail_unless (mrtc_olm_json_payload_from_string (
                   "{}", MRTC_OLM_MAX_PAYLOAD_LEN + 1, &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
  g_clear_error (&error);
}

GST_END_TEST;

/* Olm-encrypts @plaintext (any bytes) from @from to @to as a pre-key
 * message with libolm directly, using one of @to's one-time keys: the
 * content of an m.room.encrypted to-device event. */
static JsonObject *
raw_olm_prekey (MrtcOlmAccount *from, MrtcOlmAccount *to,
    const gchar *plaintext, gsize plaintext_len)
{
  g_autoptr (JsonObject) claimed = olm_test_claim_one_time_key (to);
  GList *members = json_object_get_members (claimed);
  const gchar *otk = json_object_get_string_member (
      json_object_get_object_member (claimed, members->data), "key");
  const gchar *to_curve = mrtc_olm_account_get_curve25519 (to);
  OlmSession *session = olm_session (g_malloc0 (olm_session_size ()));
  gsize random_len = olm_create_outbound_session_random_length (session);
  guint8 *random = g_malloc (MAX (random_len, 1));
  gsize message_len;
  gchar *message;
  JsonObject *content = json_object_new ();
  JsonObject *ciphertext = json_object_new ();
  JsonObject *one = json_object_new ();

  mrtc_olm_random_bytes (random, random_len);
  fail_if (olm_create_outbound_session (session, from->olm, to_curve,
               strlen (to_curve), otk, strlen (otk), random, random_len)
           == olm_error ());
  g_free (random);
  g_list_free (members);
  fail_unless_equals_int (olm_encrypt_message_type (session), 0);
  random_len = olm_encrypt_random_length (session);
  random = g_malloc (MAX (random_len, 1));
  mrtc_olm_random_bytes (random, random_len);
  message_len = olm_encrypt_message_length (session, plaintext_len);
  message = g_malloc0 (message_len + 1);
  fail_if (olm_encrypt (session, plaintext, plaintext_len, random, random_len,
               message, message_len)
           == olm_error ());
  g_free (random);
  olm_clear_session (session);
  g_free (session);

  json_object_set_string_member (
      content, "algorithm", "m.olm.v1.curve25519-aes-sha2");
  json_object_set_string_member (
      content, "sender_key", mrtc_olm_account_get_curve25519 (from));
  json_object_set_int_member (one, "type", 0);
  json_object_set_string_member (one, "body", message);
  g_free (message);
  json_object_set_object_member (ciphertext, to_curve, one);
  json_object_set_object_member (content, "ciphertext", ciphertext);
  return content;
}

/* An Olm payload as Alice would send it, but with @inner (raw JSON text) as
 * the content. */
static gchar *
olm_payload_text (MrtcOlmAccount *from, MrtcOlmAccount *to, const gchar *inner)
{
  return g_strdup_printf (
      "{\"type\":\"m.test\",\"content\":%s,\"sender\":\"%s\","
      "\"recipient\":\"%s\",\"recipient_keys\":{\"ed25519\":\"%s\"},"
      "\"keys\":{\"ed25519\":\"%s\"}}",
      inner, mrtc_olm_account_get_user_id (from),
      mrtc_olm_account_get_user_id (to), mrtc_olm_account_get_ed25519 (to),
      mrtc_olm_account_get_ed25519 (from));
}

GST_START_TEST (test_olm_hostile_payloads)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (MrtcOlmAccount) bob = olm_test_account_new ("@bob:hs", "BOB");
  GError *error = NULL;
  guint i;

  olm_test_learn_device (alice, bob);
  olm_test_learn_device (bob, alice);

  /* A well-formed payload made the same way decrypts: the helper is sound. */
  {
    g_autofree gchar *text = olm_payload_text (alice, bob, "{\"text\":\"hi\"}");
    g_autoptr (JsonObject) content
        = raw_olm_prekey (alice, bob, text, strlen (text));
    g_autoptr (MrtcOlmDecrypted) d = mrtc_olm_account_decrypt_to_device (
        bob, "@alice:hs", content, &error);

    g_assert_no_error (error);
    fail_unless_equals_string (
        json_object_get_string_member (d->content, "text"), "hi");
  }

  /* 100,000 nested arrays (about 200 KB): refused, no crash. */
  {
    g_autofree gchar *deep = nested_arrays (100000);
    g_autofree gchar *text = olm_payload_text (alice, bob, deep);
    g_autoptr (JsonObject) content
        = raw_olm_prekey (alice, bob, text, strlen (text));

    fail_unless (
        mrtc_olm_account_decrypt_to_device (bob, "@alice:hs", content, &error)
        == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    g_clear_error (&error);
  }

  /* 30,000 levels within the size limit: refused by the depth check. */
  {
    g_autofree gchar *deep = nested_arrays (30000);
    g_autofree gchar *text = olm_payload_text (alice, bob, deep);
    g_autoptr (JsonObject) content
        = raw_olm_prekey (alice, bob, text, strlen (text));

    fail_unless (strlen (text) < MRTC_OLM_MAX_PAYLOAD_LEN);
    fail_unless (
        mrtc_olm_account_decrypt_to_device (bob, "@alice:hs", content, &error)
        == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    fail_unless (
        strstr (error->message, "nested") != NULL, "%s", error->message);
    g_clear_error (&error);
  }

  /* A flat payload over 64 KiB: refused too. */
  {
    GString *big = g_string_new ("\"");
    g_autofree gchar *inner = NULL;
    g_autofree gchar *text = NULL;
    g_autoptr (JsonObject) content = NULL;

    for (i = 0; i < MRTC_OLM_MAX_PAYLOAD_LEN; i++)
      g_string_append_c (big, 'a');
    g_string_append_c (big, '"');
    inner = g_string_free (big, FALSE);
    text = olm_payload_text (alice, bob, inner);
    content = raw_olm_prekey (alice, bob, text, strlen (text));
    fail_unless (
        mrtc_olm_account_decrypt_to_device (bob, "@alice:hs", content, &error)
        == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    g_clear_error (&error);
  }

  /* Through the normal API: content nested 70 deep is refused on receipt
   * (json-glib writes it; the receiver's limit is 64). */
  {
    g_autoptr (JsonObject) content = json_object_new ();
    g_autoptr (JsonObject) encrypted = NULL;
    JsonObject *level = content;
    g_autoptr (JsonObject) claimed = olm_test_claim_one_time_key (bob);
    const MrtcOlmDevice *bob_dev
        = mrtc_olm_account_lookup_device (alice, "@bob:hs", "BOB");

    for (i = 0; i < 70; i++) {
      JsonObject *next = json_object_new ();

      json_object_set_object_member (level, "x", next);
      level = next;
    }
    fail_unless (mrtc_olm_account_create_outbound_session (
        alice, bob_dev, claimed, &error));
    encrypted = mrtc_olm_account_encrypt_to_device (
        alice, bob_dev, "m.test", content, &error);
    g_assert_no_error (error);
    fail_unless (
        mrtc_olm_account_decrypt_to_device (bob, "@alice:hs", encrypted, &error)
        == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    g_clear_error (&error);
  }
}

GST_END_TEST;

/* Shares the room key of a Megolm session made with libolm directly, from
 * @from's device to @to: returns the outbound session. */
static OlmOutboundGroupSession *
raw_megolm_share (MrtcOlmAccount *from, MrtcOlmAccount *to)
{
  OlmOutboundGroupSession *out = olm_outbound_group_session (
      g_malloc0 (olm_outbound_group_session_size ()));
  gsize random_len = olm_init_outbound_group_session_random_length (out);
  guint8 *random = g_malloc (MAX (random_len, 1));
  gsize id_len = olm_outbound_group_session_id_length (out);
  gsize key_len = olm_outbound_group_session_key_length (out);
  g_autofree gchar *id = g_malloc0 (id_len + 1);
  g_autofree gchar *key = g_malloc0 (key_len + 1);
  g_autoptr (JsonObject) room_key = json_object_new ();
  g_autoptr (JsonObject) encrypted = NULL;
  g_autoptr (MrtcOlmDecrypted) decrypted = NULL;
  GError *error = NULL;

  mrtc_olm_random_bytes (random, random_len);
  olm_init_outbound_group_session (out, random, random_len);
  g_free (random);
  olm_outbound_group_session_id (out, (guint8 *)id, id_len);
  olm_outbound_group_session_key (out, (guint8 *)key, key_len);
  json_object_set_string_member (room_key, "algorithm", "m.megolm.v1.aes-sha2");
  json_object_set_string_member (room_key, "room_id", ROOM);
  json_object_set_string_member (room_key, "session_id", id);
  json_object_set_string_member (room_key, "session_key", key);
  encrypted = mrtc_olm_account_encrypt_to_device (from,
      mrtc_olm_account_lookup_device (from, mrtc_olm_account_get_user_id (to),
          mrtc_olm_account_get_device_id (to)),
      "m.room_key", room_key, &error);
  g_assert_no_error (error);
  decrypted = mrtc_olm_account_decrypt_to_device (
      to, mrtc_olm_account_get_user_id (from), encrypted, &error);
  g_assert_no_error (error);
  fail_unless (mrtc_olm_account_add_room_key (to, decrypted, &error));
  g_assert_no_error (error);
  return out;
}

static JsonObject *
raw_megolm_event (OlmOutboundGroupSession *out, const gchar *plaintext)
{
  gsize len = strlen (plaintext);
  gsize message_len = olm_group_encrypt_message_length (out, len);
  gsize id_len = olm_outbound_group_session_id_length (out);
  g_autofree gchar *message = g_malloc0 (message_len + 1);
  g_autofree gchar *id = g_malloc0 (id_len + 1);
  JsonObject *content = json_object_new ();

  fail_if (olm_group_encrypt (out, (const guint8 *)plaintext, len,
               (guint8 *)message, message_len)
           == olm_error ());
  olm_outbound_group_session_id (out, (guint8 *)id, id_len);
  json_object_set_string_member (content, "algorithm", "m.megolm.v1.aes-sha2");
  json_object_set_string_member (content, "ciphertext", message);
  json_object_set_string_member (content, "session_id", id);
  return content;
}

GST_START_TEST (test_megolm_hostile_payloads)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (MrtcOlmAccount) bob = olm_test_account_new ("@bob:hs", "BOB");
  OlmOutboundGroupSession *out;
  GError *error = NULL;
  guint i;

  olm_test_establish (alice, bob);
  olm_test_learn_device (bob, alice);
  out = raw_megolm_share (alice, bob);

  {
    g_autoptr (JsonObject) e = raw_megolm_event (out,
        "{\"type\":\"m.t\",\"room_id\":\"" ROOM "\",\"content\":{\"a\":1}}");
    MrtcOlmGroupDecrypted *d = mrtc_olm_account_megolm_decrypt (
        bob, ROOM, "@alice:hs", "$ok", 1, e, &error);

    g_assert_no_error (error);
    mrtc_olm_group_decrypted_free (d);
  }
  {
    g_autofree gchar *deep = nested_arrays (30000);
    g_autofree gchar *text = g_strdup_printf (
        "{\"type\":\"m.t\",\"room_id\":\"" ROOM "\",\"content\":%s}", deep);
    g_autoptr (JsonObject) e = raw_megolm_event (out, text);

    fail_unless (mrtc_olm_account_megolm_decrypt (
                     bob, ROOM, "@alice:hs", "$deep", 2, e, &error)
                 == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    g_clear_error (&error);
  }
  {
    GString *big = g_string_new (
        "{\"type\":\"m.t\",\"room_id\":\"" ROOM "\",\"content\":{\"a\":\"");
    g_autofree gchar *text = NULL;
    g_autoptr (JsonObject) e = NULL;

    for (i = 0; i < 100000; i++)
      g_string_append_c (big, 'a');
    g_string_append (big, "\"}}");
    text = g_string_free (big, FALSE);
    e = raw_megolm_event (out, text);
    fail_unless (mrtc_olm_account_megolm_decrypt (
                     bob, ROOM, "@alice:hs", "$big", 3, e, &error)
                 == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    g_clear_error (&error);
  }
  olm_clear_outbound_group_session (out);
  g_free (out);
}

GST_END_TEST;

static JsonObject *
device_list (MrtcOlmAccount *device)
{
  JsonObject *devices = json_object_new ();
  g_autoptr (JsonObject) keys = mrtc_olm_account_device_keys (device);

  json_object_set_object_member (devices,
      mrtc_olm_account_get_device_id (device), olm_test_roundtrip_json (keys));
  return devices;
}

static gchar *
make_store_dir (void)
{
  GError *error = NULL;
  gchar *dir = g_dir_make_tmp ("mrtc-olm-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

static void
remove_store (gchar *dir, gchar *path)
{
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
}

/* Finding 2: a server that leaves a device out of one /keys/query answer
 * cannot bring it back with other keys. */
GST_START_TEST (test_pin_survives_removal)
{
  gchar *dir = make_store_dir ();
  gchar *path = g_build_filename (dir, "alice.store", NULL);
  g_autoptr (MrtcOlmAccount) bob = olm_test_account_new ("@bob:hs", "BOB");
  g_autoptr (MrtcOlmAccount) impostor = olm_test_account_new ("@bob:hs", "BOB");
  g_autoptr (JsonObject) listed = device_list (bob);
  g_autoptr (JsonObject) forged = device_list (impostor);
  g_autoptr (JsonObject) empty = json_object_new ();
  MrtcOlmAccount *alice;
  GError *error = NULL;

  alice = mrtc_olm_account_open ("@alice:hs", "ALICE", path,
      olm_test_pickle_key, sizeof (olm_test_pickle_key), &error);
  g_assert_no_error (error);

  fail_unless_equals_int (
      mrtc_olm_account_update_user_devices (alice, "@bob:hs", listed), 1);
  /* Omitted once: removed (no longer a recipient) ... */
  fail_unless_equals_int (
      mrtc_olm_account_update_user_devices (alice, "@bob:hs", empty), 0);
  fail_unless (
      mrtc_olm_account_lookup_device (alice, "@bob:hs", "BOB") == NULL);

  /* ... but its keys stay pinned, across a restart too. */
  fail_unless (mrtc_olm_account_save (alice, &error));
  mrtc_olm_account_free (alice);
  alice = mrtc_olm_account_open ("@alice:hs", "ALICE", path,
      olm_test_pickle_key, sizeof (olm_test_pickle_key), &error);
  g_assert_no_error (error);
  fail_unless_equals_int (
      mrtc_olm_account_update_user_devices (alice, "@bob:hs", forged), 0);
  fail_unless (
      mrtc_olm_account_lookup_device (alice, "@bob:hs", "BOB") == NULL);
  {
    g_autoptr (JsonObject) keys = olm_test_roundtrip_json (
        json_object_get_object_member (forged, "BOB"));

    fail_unless (
        mrtc_olm_account_add_device (alice, keys, "@bob:hs", "BOB", &error)
        == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH);
    g_clear_error (&error);
  }

  /* The real device coming back is accepted. */
  fail_unless_equals_int (
      mrtc_olm_account_update_user_devices (alice, "@bob:hs", listed), 1);
  fail_unless_equals_string (
      mrtc_olm_account_lookup_device (alice, "@bob:hs", "BOB")->ed25519,
      mrtc_olm_account_get_ed25519 (bob));

  /* Our own device id with keys that are not ours: refused; with ours:
   * accepted. */
  {
    g_autoptr (MrtcOlmAccount) fake_me
        = olm_test_account_new ("@alice:hs", "ALICE");
    g_autoptr (JsonObject) fake = device_list (fake_me);
    g_autoptr (JsonObject) mine = device_list (alice);

    fail_unless_equals_int (
        mrtc_olm_account_update_user_devices (alice, "@alice:hs", fake), 0);
    fail_unless (
        mrtc_olm_account_lookup_device (alice, "@alice:hs", "ALICE") == NULL);
    fail_unless_equals_int (
        mrtc_olm_account_update_user_devices (alice, "@alice:hs", mine), 1);
  }

  mrtc_olm_account_free (alice);
  remove_store (dir, path);
}

GST_END_TEST;

static JsonObject *
encrypt_text (MrtcOlmAccount *from, const MrtcOlmDevice *to, const gchar *text)
{
  g_autoptr (JsonObject) content = json_object_new ();
  JsonObject *encrypted;
  GError *error = NULL;

  json_object_set_string_member (content, "text", text);
  encrypted = mrtc_olm_account_encrypt_to_device (
      from, to, "m.test", content, &error);
  g_assert_no_error (error);
  return encrypted;
}

static void
assert_decrypts (MrtcOlmAccount *to, const gchar *sender, JsonObject *message,
    const gchar *text)
{
  GError *error = NULL;
  g_autoptr (MrtcOlmDecrypted) d
      = mrtc_olm_account_decrypt_to_device (to, sender, message, &error);

  g_assert_no_error (error);
  fail_unless_equals_string (
      json_object_get_string_member (d->content, "text"), text);
}

/* Finding 3: a pre-key message made with our fallback key (which libolm
 * keeps after use) must not decrypt again once its session was evicted. */
GST_START_TEST (test_fallback_replay_after_eviction)
{
  gchar *dir = make_store_dir ();
  gchar *path = g_build_filename (dir, "bob.store", NULL);
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (JsonObject) fallback = NULL;
  g_autoptr (JsonObject) first_message = NULL;
  const MrtcOlmDevice *bob_dev;
  MrtcOlmAccount *bob;
  GError *error = NULL;
  guint i;

  bob = mrtc_olm_account_open ("@bob:hs", "BOB", path, olm_test_pickle_key,
      sizeof (olm_test_pickle_key), &error);
  g_assert_no_error (error);
  fail_unless (mrtc_olm_account_ensure_fallback_key (bob, NULL));
  {
    g_autoptr (JsonObject) keys = mrtc_olm_account_fallback_keys (bob);

    fail_unless_equals_int (json_object_get_size (keys), 1);
    fallback = olm_test_roundtrip_json (keys);
  }
  mrtc_olm_account_mark_published (bob);
  bob_dev = olm_test_learn_device (alice, bob);
  olm_test_learn_device (bob, alice);

  /* The fallback key is claimed (no one-time key left) and used. */
  fail_unless (mrtc_olm_account_create_outbound_session (
      alice, bob_dev, fallback, &error));
  g_assert_no_error (error);
  first_message = encrypt_text (alice, bob_dev, "first");
  assert_decrypts (bob, "@alice:hs", first_message, "first");

  /* Eight more sessions over the same fallback key evict the first one
   * (at most eight are kept per device). */
  for (i = 0; i < 8; i++) {
    g_autoptr (JsonObject) m = NULL;
    g_autofree gchar *text = g_strdup_printf ("more %u", i);

    fail_unless (mrtc_olm_account_create_outbound_session (
        alice, bob_dev, fallback, &error));
    m = encrypt_text (alice, bob_dev, text);
    assert_decrypts (bob, "@alice:hs", m, text);
  }

  /* The first message replayed: refused, also after a restart. */
  fail_unless (mrtc_olm_account_decrypt_to_device (
                   bob, "@alice:hs", first_message, &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT);
  g_clear_error (&error);
  fail_unless (mrtc_olm_account_save (bob, &error));
  mrtc_olm_account_free (bob);
  bob = mrtc_olm_account_open ("@bob:hs", "BOB", path, olm_test_pickle_key,
      sizeof (olm_test_pickle_key), &error);
  g_assert_no_error (error);
  fail_unless (mrtc_olm_account_decrypt_to_device (
                   bob, "@alice:hs", first_message, &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT);
  g_clear_error (&error);

  /* A new session over the fallback key still works. */
  {
    g_autoptr (JsonObject) m = NULL;

    fail_unless (mrtc_olm_account_create_outbound_session (
        alice, bob_dev, fallback, &error));
    m = encrypt_text (alice, bob_dev, "fresh");
    assert_decrypts (bob, "@alice:hs", m, "fresh");
  }

  /* A new fallback key is published: the old one still works for an
   * hour (messages made with it may be on their way), then is forgotten. */
  {
    g_autoptr (JsonObject) late = NULL;
    g_autoptr (JsonObject) later = NULL;
    g_autoptr (JsonArray) none = json_array_new ();

    fail_unless (mrtc_olm_account_ensure_fallback_key (bob, none));
    mrtc_olm_account_mark_published (bob);
    fail_unless (bob->fallback_published_at > 0);
    fail_unless (mrtc_olm_account_create_outbound_session (
        alice, bob_dev, fallback, &error));
    late = encrypt_text (alice, bob_dev, "late");
    assert_decrypts (bob, "@alice:hs", late, "late");

    bob->fallback_published_at -= G_GINT64_CONSTANT (3601) * G_USEC_PER_SEC;
    fail_unless (mrtc_olm_account_create_outbound_session (
        alice, bob_dev, fallback, &error));
    later = encrypt_text (alice, bob_dev, "too late");
    fail_unless (
        mrtc_olm_account_decrypt_to_device (bob, "@alice:hs", later, &error)
        == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT);
    g_clear_error (&error);
    fail_unless_equals_int64 (bob->fallback_published_at, 0);
  }

  mrtc_olm_account_free (bob);
  remove_store (dir, path);
}

GST_END_TEST;

static void
share_room_key_from (
    MrtcOlmAccount *from, MrtcOlmAccount *to, JsonObject *room_key)
{
  const MrtcOlmDevice *to_dev = mrtc_olm_account_lookup_device (from,
      mrtc_olm_account_get_user_id (to), mrtc_olm_account_get_device_id (to));
  g_autoptr (JsonObject) encrypted = NULL;
  g_autoptr (MrtcOlmDecrypted) decrypted = NULL;
  GError *error = NULL;

  encrypted = mrtc_olm_account_encrypt_to_device (
      from, to_dev, "m.room_key", room_key, &error);
  g_assert_no_error (error);
  decrypted = mrtc_olm_account_decrypt_to_device (
      to, mrtc_olm_account_get_user_id (from), encrypted, &error);
  g_assert_no_error (error);
  fail_unless (mrtc_olm_account_add_room_key (to, decrypted, &error));
  g_assert_no_error (error);
}

static JsonObject *
megolm_text (MrtcOlmAccount *from, const gchar *text)
{
  g_autoptr (JsonObject) content = json_object_new ();
  JsonObject *encrypted;
  GError *error = NULL;

  json_object_set_string_member (content, "body", text);
  encrypted
      = mrtc_olm_account_megolm_encrypt (from, ROOM, "m.test", content, &error);
  g_assert_no_error (error);
  return encrypted;
}

/* Finding 4: Mallory, who holds Alice's room key, shares it as her own
 * session (same id); events without sender_key still decrypt as Alice's. */
GST_START_TEST (test_megolm_shared_session_id)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (MrtcOlmAccount) mallory
      = olm_test_account_new ("@mallory:hs", "MALLORY");
  g_autoptr (JsonObject) room_key = NULL;
  GError *error = NULL;
  guint round;

  for (round = 0; round < 8; round++) {
    g_autofree gchar *bob_device = g_strdup_printf ("BOB%u", round);
    g_autoptr (MrtcOlmAccount) bob
        = olm_test_account_new ("@bob:hs", bob_device);
    g_autoptr (JsonObject) event = NULL;
    MrtcOlmGroupDecrypted *d;

    olm_test_establish (alice, bob);
    olm_test_establish (mallory, bob);
    olm_test_learn_device (bob, alice);
    olm_test_learn_device (bob, mallory);
    mrtc_olm_account_megolm_discard (alice, ROOM);
    g_clear_pointer (&room_key, json_object_unref);
    room_key = mrtc_olm_account_megolm_room_key (alice, ROOM);
    /* Both orders, so that either session may come first in the table. */
    if (round % 2 == 0) {
      share_room_key_from (mallory, bob, room_key);
      share_room_key_from (alice, bob, room_key);
    } else {
      share_room_key_from (alice, bob, room_key);
      share_room_key_from (mallory, bob, room_key);
    }

    event = megolm_text (alice, "from alice");
    json_object_remove_member (event, "sender_key");
    json_object_remove_member (event, "device_id");
    d = mrtc_olm_account_megolm_decrypt (
        bob, ROOM, "@alice:hs", "$a", 1, event, &error);
    g_assert_no_error (error);
    fail_unless_equals_string (
        d->sender_curve25519, mrtc_olm_account_get_curve25519 (alice));
    fail_unless_equals_string (
        json_object_get_string_member (d->content, "body"), "from alice");
    mrtc_olm_group_decrypted_free (d);

    /* A sender who shared no session with that id: refused. */
    fail_unless (mrtc_olm_account_megolm_decrypt (
                     bob, ROOM, "@carol:hs", "$c", 1, event, &error)
                 == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH);
    g_clear_error (&error);
  }
}

GST_END_TEST;

/* Findings 8 and 9: rotation periods from room state cannot overflow, and
 * peer-driven Megolm state is bounded. */
GST_START_TEST (test_megolm_limits)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (MrtcOlmAccount) bob = olm_test_account_new ("@bob:hs", "BOB");
  g_autoptr (JsonObject) first_event = NULL;
  g_autoptr (JsonObject) last_event = NULL;
  GError *error = NULL;
  MrtcOlmGroupDecrypted *d;
  guint i;

  olm_test_establish (alice, bob);
  olm_test_learn_device (bob, alice);

  /* A huge rotation_period_ms used to wrap negative: every session was
   * expired at once and nothing could be sent. */
  mrtc_olm_account_set_megolm_rotation (alice, G_MAXINT64 / 100, 2000);
  {
    g_autoptr (JsonObject) room_key
        = mrtc_olm_account_megolm_room_key (alice, ROOM);

    share_room_key_from (alice, bob, room_key);
  }

  /* Replay records: at most 1024 per session; older indexes are refused
   * (they can no longer be checked), newer ones keep working. */
  for (i = 0; i < 1100; i++) {
    g_autoptr (JsonObject) e = megolm_text (alice, "m");
    g_autofree gchar *id = g_strdup_printf ("$e%u", i);

    d = mrtc_olm_account_megolm_decrypt (
        bob, ROOM, "@alice:hs", id, i, e, &error);
    g_assert_no_error (error);
    mrtc_olm_group_decrypted_free (d);
    if (i == 0)
      first_event = json_object_ref (e);
    if (i == 1099)
      last_event = json_object_ref (e);
  }
  d = mrtc_olm_account_megolm_decrypt (
      bob, ROOM, "@alice:hs", "$e1099", 1099, last_event, &error);
  g_assert_no_error (error);
  mrtc_olm_group_decrypted_free (d);
  fail_unless (mrtc_olm_account_megolm_decrypt (
                   bob, ROOM, "@alice:hs", "$e0", 0, first_event, &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_REPLAY);
  g_clear_error (&error);

  /* Sessions per sending device: at most 256, the oldest dropped. */
  g_clear_pointer (&first_event, json_object_unref);
  for (i = 0; i < 300; i++) {
    g_autoptr (JsonObject) room_key = NULL;

    mrtc_olm_account_megolm_discard (alice, ROOM);
    room_key = mrtc_olm_account_megolm_room_key (alice, ROOM);
    share_room_key_from (alice, bob, room_key);
    if (i == 0)
      first_event = megolm_text (alice, "old session");
  }
  fail_unless (mrtc_olm_account_megolm_decrypt (
                   bob, ROOM, "@alice:hs", "$old", 1, first_event, &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_UNKNOWN_SESSION);
  g_clear_error (&error);
  {
    g_autoptr (JsonObject) e = megolm_text (alice, "new session");

    d = mrtc_olm_account_megolm_decrypt (
        bob, ROOM, "@alice:hs", "$new", 2, e, &error);
    g_assert_no_error (error);
    mrtc_olm_group_decrypted_free (d);
  }
  fail_unless_equals_int (g_hash_table_size (bob->inbound_groups), 256);
  fail_unless (g_hash_table_size (alice->inbound_groups) <= 256);
}

GST_END_TEST;

static Suite *
olmhardening_suite (void)
{
  Suite *s = suite_create ("olmhardening");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_json_guard);
  tcase_add_test (tc, test_olm_hostile_payloads);
  tcase_add_test (tc, test_megolm_hostile_payloads);
  tcase_add_test (tc, test_pin_survives_removal);
  tcase_add_test (tc, test_fallback_replay_after_eviction);
  tcase_add_test (tc, test_megolm_shared_session_id);
  tcase_add_test (tc, test_megolm_limits);
  return s;
}

GST_CHECK_MAIN (olmhardening);
