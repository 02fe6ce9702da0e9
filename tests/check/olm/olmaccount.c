/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Unit tests of ext/olm: canonical JSON and signatures, the account store,
 * Olm to-device sessions and Megolm, with in-process accounts. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <string.h>

#include "olmtestutil.h"

static gchar *
canonical_of (const gchar *text)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  GError *error = NULL;

  g_assert_true (json_parser_load_from_data (parser, text, -1, &error));
  return mrtc_olm_canonical_json (json_parser_get_root (parser), NULL);
}

GST_START_TEST (test_canonical_json)
{
  gchar *out;

  /* Examples from the Matrix spec's appendix on canonical JSON. */
  out = canonical_of ("{\"b\":\"2\",\"a\":\"1\"}");
  fail_unless_equals_string (out, "{\"a\":\"1\",\"b\":\"2\"}");
  g_free (out);
  out = canonical_of ("{ \"one\": 1, \"two\": \"Two\" }");
  fail_unless_equals_string (out, "{\"one\":1,\"two\":\"Two\"}");
  g_free (out);
  out = canonical_of (
      "{\"auth\":{\"success\":true,\"mxid\":\"@john.doe:"
      "example.com\",\"profile\":{\"display_name\":\"John Doe\",\"three_pids"
      "\":[{\"medium\":\"email\",\"address\":\"john.doe@example.org\"},{\""
      "medium\":\"msisdn\",\"address\":\"123456789\"}]}}}");
  fail_unless_equals_string (out,
      "{\"auth\":{\"mxid\":\"@john.doe:example"
      ".com\",\"profile\":{\"display_name\":\"John Doe\",\"three_pids\":[{\""
      "address\":\"john.doe@example.org\",\"medium\":\"email\"},{\"address\""
      ":\"123456789\",\"medium\":\"msisdn\"}]},\"success\":true}}");
  g_free (out);
  out = canonical_of ("{\"a\": \"\\u65E5\\u672C\\u8A9E\"}");
  fail_unless_equals_string (out, "{\"a\":\"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA"
                                  "\x9E\"}");
  g_free (out);
  out = canonical_of ("{\"\\u65E5\": 1, \"a\": null, \"b\": [1.0, false]}");
  fail_unless_equals_string (out, "{\"a\":null,\"b\":[1,false],\"\xE6\x97\xA5"
                                  "\":1}");
  g_free (out);
  out = canonical_of ("{\"a\": \"\\u0001\\u001f\\n\\\"\\\\/\"}");
  fail_unless_equals_string (out, "{\"a\":\"\\u0001\\u001f\\n\\\"\\\\/\"}");
  g_free (out);

  /* Not representable: fractions and huge integers. */
  fail_unless (canonical_of ("{\"a\": 1.5}") == NULL);
  fail_unless (canonical_of ("{\"a\": 9007199254740992}") == NULL);
}

GST_END_TEST;

GST_START_TEST (test_base64_strict)
{
  gsize len = 0;
  guint8 *raw;

  raw = mrtc_olm_base64_decode_strict ("AAECAw", FALSE, &len);
  fail_unless (raw != NULL && len == 4 && raw[3] == 3);
  g_free (raw);
  raw = mrtc_olm_base64_decode_strict ("AAECAw==", FALSE, &len);
  fail_unless (raw != NULL && len == 4);
  g_free (raw);
  raw = mrtc_olm_base64_decode_strict ("-_8", TRUE, &len);
  fail_unless (raw != NULL && len == 2 && raw[0] == 0xfb && raw[1] == 0xff);
  g_free (raw);
  fail_unless (mrtc_olm_base64_decode_strict ("-_8", FALSE, &len) == NULL);
  fail_unless (mrtc_olm_base64_decode_strict ("AAE!Aw", FALSE, &len) == NULL);
  fail_unless (mrtc_olm_base64_decode_strict ("AAECA", FALSE, &len) == NULL);
  fail_unless (mrtc_olm_base64_decode_strict ("AA=ECAw", FALSE, &len) == NULL);
  fail_unless (
      mrtc_olm_base64_decode_strict ("AAECAw===", FALSE, &len) == NULL);
}

GST_END_TEST;

GST_START_TEST (test_device_keys_signature)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (JsonObject) keys = mrtc_olm_account_device_keys (alice);
  g_autoptr (JsonObject) wire = olm_test_roundtrip_json (keys);
  g_autoptr (MrtcOlmDevice) device = NULL;
  GError *error = NULL;
  JsonObject *k;

  /* What /keys/upload gets: the fields Matrix requires. */
  fail_unless_equals_string (
      json_object_get_string_member (wire, "user_id"), "@alice:hs");
  fail_unless_equals_string (
      json_object_get_string_member (wire, "device_id"), "ALICE");
  fail_unless_equals_string (
      json_object_get_string_member (
          json_object_get_object_member (wire, "keys"), "ed25519:ALICE"),
      mrtc_olm_account_get_ed25519 (alice));

  device = mrtc_olm_verify_device_keys (wire, "@alice:hs", "ALICE", &error);
  g_assert_no_error (error);
  fail_unless_equals_string (
      device->curve25519, mrtc_olm_account_get_curve25519 (alice));

  /* Listed under another user or device: refused. */
  fail_unless (
      mrtc_olm_verify_device_keys (wire, "@mallory:hs", "ALICE", &error)
      == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH);
  g_clear_error (&error);
  fail_unless (
      mrtc_olm_verify_device_keys (wire, "@alice:hs", "OTHER", &error) == NULL);
  g_clear_error (&error);

  /* A swapped Curve25519 key breaks the signature. */
  k = json_object_get_object_member (wire, "keys");
  json_object_set_string_member (
      k, "curve25519:ALICE", mrtc_olm_account_get_ed25519 (alice));
  fail_unless (
      mrtc_olm_verify_device_keys (wire, "@alice:hs", "ALICE", &error) == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_SIGNATURE);
  g_clear_error (&error);

  /* Unsigned fields may change; `unsigned` is not covered. */
  {
    g_autoptr (JsonObject) wire2 = olm_test_roundtrip_json (keys);
    JsonObject *u = json_object_new ();

    json_object_set_string_member (u, "device_display_name", "x");
    json_object_set_object_member (wire2, "unsigned", u);
    g_autoptr (MrtcOlmDevice) d2
        = mrtc_olm_verify_device_keys (wire2, "@alice:hs", "ALICE", &error);
    g_assert_no_error (error);
    fail_unless (d2 != NULL);
  }
}

GST_END_TEST;

GST_START_TEST (test_one_time_keys)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (JsonObject) body2 = NULL;
  JsonObject *otks;
  GList *members, *l;
  guint n;

  n = mrtc_olm_account_one_time_keys_to_generate (alice, 0);
  fail_unless_equals_int (n, 50);
  mrtc_olm_account_generate_one_time_keys (alice, n);
  fail_unless_equals_int (
      mrtc_olm_account_one_time_keys_to_generate (alice, 0), 0);
  fail_unless (mrtc_olm_account_ensure_fallback_key (alice, NULL));

  body = mrtc_olm_account_upload_body (alice);
  fail_unless (json_object_has_member (body, "device_keys"));
  fail_unless (json_object_has_member (body, "fallback_keys"));
  otks = json_object_get_object_member (body, "one_time_keys");
  fail_unless_equals_int (json_object_get_size (otks), 50);
  members = json_object_get_members (otks);
  for (l = members; l != NULL; l = l->next) {
    JsonObject *signed_key = json_object_get_object_member (otks, l->data);
    g_autofree gchar *ed_id = g_strdup ("ed25519:ALICE");
    GError *error = NULL;

    fail_unless (g_str_has_prefix (l->data, "signed_curve25519:"));
    fail_unless (mrtc_olm_verify_signature (signed_key, "@alice:hs", ed_id,
        mrtc_olm_account_get_ed25519 (alice), &error));
    g_assert_no_error (error);
  }
  g_list_free (members);

  mrtc_olm_account_mark_published (alice);
  fail_unless (mrtc_olm_account_device_keys_published (alice));
  body2 = mrtc_olm_account_upload_body (alice);
  fail_unless_equals_int (json_object_get_size (body2), 0);
  fail_unless_equals_int (
      mrtc_olm_account_one_time_keys_to_generate (alice, 50), 0);
  fail_unless_equals_int (
      mrtc_olm_account_one_time_keys_to_generate (alice, 10), 40);
  {
    g_autoptr (JsonArray) types = json_array_new ();

    json_array_add_string_element (types, "signed_curve25519");
    fail_if (mrtc_olm_account_ensure_fallback_key (alice, types));
  }
}

GST_END_TEST;

static gboolean
contains_bytes (const gchar *hay, gsize hay_len, const gchar *needle)
{
  gsize n = strlen (needle), i;

  for (i = 0; i + n <= hay_len; i++)
    if (memcmp (hay + i, needle, n) == 0)
      return TRUE;
  return FALSE;
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
remove_store_dir (const gchar *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL) {
    g_autofree gchar *path = g_build_filename (dir, name, NULL);

    g_unlink (path);
  }
  g_rmdir (dir);
}

static gchar *
encrypt_text (MrtcOlmAccount *from, const MrtcOlmDevice *to, const gchar *text)
{
  g_autoptr (JsonObject) content = json_object_new ();
  g_autoptr (JsonObject) encrypted = NULL;
  GError *error = NULL;

  json_object_set_string_member (content, "text", text);
  encrypted = mrtc_olm_account_encrypt_to_device (
      from, to, "m.test", content, &error);
  g_assert_no_error (error);
  return mrtc_olm_json_object_to_string (encrypted);
}

static MrtcOlmDecrypted *
decrypt_text (
    MrtcOlmAccount *to, const gchar *sender, const gchar *wire, GError **error)
{
  g_autoptr (JsonObject) content
      = mrtc_olm_json_object_from_string (wire, -1, NULL);

  return mrtc_olm_account_decrypt_to_device (to, sender, content, error);
}

static void
assert_text (MrtcOlmDecrypted *decrypted, const gchar *text)
{
  fail_unless (decrypted != NULL);
  fail_unless_equals_string (decrypted->type, "m.test");
  fail_unless_equals_string (
      json_object_get_string_member (decrypted->content, "text"), text);
  mrtc_olm_decrypted_free (decrypted);
}

GST_START_TEST (test_store_persist_reload)
{
  g_autofree gchar *dir = make_store_dir ();
  g_autofree gchar *path = g_build_filename (dir, "sub", "olm.store", NULL);
  g_autofree gchar *curve = NULL;
  g_autofree gchar *ed = NULL;
  g_autofree gchar *wire = NULL;
  g_autoptr (MrtcOlmAccount) bob = olm_test_account_new ("@bob:hs", "BOB");
  MrtcOlmAccount *alice;
  const MrtcOlmDevice *bob_dev;
  GError *error = NULL;
  GStatBuf st;
  gchar *contents = NULL;
  gsize contents_len = 0;
  guint8 wrong_key[32];

  alice = mrtc_olm_account_open ("@alice:hs", "ALICE", path,
      olm_test_pickle_key, sizeof (olm_test_pickle_key), &error);
  g_assert_no_error (error);
  curve = g_strdup (mrtc_olm_account_get_curve25519 (alice));
  ed = g_strdup (mrtc_olm_account_get_ed25519 (alice));

  /* Created at once, mode 0600, and nothing readable in it. */
  fail_unless (g_stat (path, &st) == 0);
  fail_unless_equals_int (st.st_mode & 0777, 0600);
  fail_unless (g_file_get_contents (path, &contents, &contents_len, NULL));
  fail_if (contains_bytes (contents, contents_len, "@alice"));
  fail_if (contains_bytes (contents, contents_len, curve));
  g_free (contents);

  /* A session and a known device survive a restart. */
  olm_test_establish (alice, bob);
  olm_test_learn_device (bob, alice);
  fail_unless (mrtc_olm_account_is_dirty (alice));
  fail_unless (mrtc_olm_account_save (alice, &error));
  g_assert_no_error (error);
  mrtc_olm_account_free (alice);

  alice = mrtc_olm_account_open ("@alice:hs", "ALICE", path,
      olm_test_pickle_key, sizeof (olm_test_pickle_key), &error);
  g_assert_no_error (error);
  fail_unless_equals_string (mrtc_olm_account_get_curve25519 (alice), curve);
  fail_unless_equals_string (mrtc_olm_account_get_ed25519 (alice), ed);
  fail_unless (mrtc_olm_account_device_keys_published (alice) == FALSE);
  bob_dev = mrtc_olm_account_lookup_device (alice, "@bob:hs", "BOB");
  fail_unless (bob_dev != NULL);
  fail_unless (mrtc_olm_account_has_session (alice, bob_dev));
  wire = encrypt_text (alice, bob_dev, "after restart");
  assert_text (decrypt_text (bob, "@alice:hs", wire, &error), "after restart");
  g_assert_no_error (error);
  mrtc_olm_account_free (alice);

  /* The wrong pickle key, or another device's store: an error, never a
   * silently new identity. */
  memset (wrong_key, 'x', sizeof (wrong_key));
  fail_unless (mrtc_olm_account_open ("@alice:hs", "ALICE", path, wrong_key,
                   sizeof (wrong_key), &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE);
  g_clear_error (&error);
  fail_unless (mrtc_olm_account_open ("@alice:hs", "OTHER", path,
                   olm_test_pickle_key, sizeof (olm_test_pickle_key), &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE);
  g_clear_error (&error);
  fail_unless (mrtc_olm_account_open (
                   "@alice:hs", "ALICE", path, olm_test_pickle_key, 8, &error)
               == NULL);
  g_clear_error (&error);

  /* A corrupted file is refused too. */
  fail_unless (g_file_get_contents (path, &contents, &contents_len, NULL));
  contents[contents_len / 2] ^= 1;
  fail_unless (g_file_set_contents (path, contents, contents_len, NULL));
  g_free (contents);
  fail_unless (mrtc_olm_account_open ("@alice:hs", "ALICE", path,
                   olm_test_pickle_key, sizeof (olm_test_pickle_key), &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE);
  g_clear_error (&error);

  {
    g_autofree gchar *sub = g_build_filename (dir, "sub", NULL);

    remove_store_dir (sub);
    remove_store_dir (dir);
  }
}

GST_END_TEST;

GST_START_TEST (test_olm_both_ways_and_reuse)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (MrtcOlmAccount) bob = olm_test_account_new ("@bob:hs", "BOB");
  g_autoptr (JsonObject) encrypted = NULL;
  const MrtcOlmDevice *bob_dev, *alice_dev;
  GError *error = NULL;
  MrtcOlmDecrypted *decrypted;
  JsonObject *ciphertext, *one;
  gchar *wire;
  guint i;

  olm_test_establish (alice, bob);
  alice_dev = olm_test_learn_device (bob, alice);
  bob_dev = mrtc_olm_account_lookup_device (alice, "@bob:hs", "BOB");
  fail_if (mrtc_olm_account_has_session (bob, alice_dev));

  /* The wire format of m.olm.v1.curve25519-aes-sha2. */
  {
    g_autoptr (JsonObject) content = json_object_new ();

    json_object_set_string_member (content, "text", "hello");
    encrypted = mrtc_olm_account_encrypt_to_device (
        alice, bob_dev, "m.test", content, &error);
    g_assert_no_error (error);
  }
  fail_unless_equals_string (
      json_object_get_string_member (encrypted, "algorithm"),
      "m.olm.v1.curve25519-aes-sha2");
  fail_unless_equals_string (
      json_object_get_string_member (encrypted, "sender_key"),
      mrtc_olm_account_get_curve25519 (alice));
  ciphertext = json_object_get_object_member (encrypted, "ciphertext");
  fail_unless_equals_int (json_object_get_size (ciphertext), 1);
  one = json_object_get_object_member (ciphertext, bob_dev->curve25519);
  fail_unless_equals_int (json_object_get_int_member (one, "type"), 0);
  fail_unless (json_object_get_string_member (one, "body") != NULL);

  decrypted = mrtc_olm_account_decrypt_to_device (
      bob, "@alice:hs", encrypted, &error);
  g_assert_no_error (error);
  fail_unless_equals_string (decrypted->sender_device->device_id, "ALICE");
  fail_unless_equals_string (
      decrypted->sender_device->ed25519, mrtc_olm_account_get_ed25519 (alice));
  assert_text (decrypted, "hello");

  /* Bob answers over the session Alice started (no new key claimed). */
  fail_unless (mrtc_olm_account_has_session (bob, alice_dev));
  wire = encrypt_text (bob, alice_dev, "hi back");
  assert_text (decrypt_text (alice, "@bob:hs", wire, &error), "hi back");
  g_assert_no_error (error);
  g_free (wire);

  /* Sessions are reused both ways: from now on plain messages (type 1). */
  for (i = 0; i < 5; i++) {
    g_autofree gchar *a = encrypt_text (alice, bob_dev, "ping");
    g_autofree gchar *b = encrypt_text (bob, alice_dev, "pong");

    fail_unless (strstr (a, "\"type\":1") != NULL);
    assert_text (decrypt_text (bob, "@alice:hs", a, &error), "ping");
    g_assert_no_error (error);
    assert_text (decrypt_text (alice, "@bob:hs", b, &error), "pong");
    g_assert_no_error (error);
  }

  /* Bob can also start a second session himself; both decrypt. */
  {
    g_autoptr (JsonObject) claimed = olm_test_claim_one_time_key (alice);
    g_autofree gchar *c = NULL;

    fail_unless (mrtc_olm_account_create_outbound_session (
        bob, alice_dev, claimed, &error));
    g_assert_no_error (error);
    c = encrypt_text (bob, alice_dev, "new session");
    fail_unless (strstr (c, "\"type\":0") != NULL);
    assert_text (decrypt_text (alice, "@bob:hs", c, &error), "new session");
    g_assert_no_error (error);
  }

  /* Several recipients at once, one without a session. */
  {
    g_autoptr (MrtcOlmAccount) carol
        = olm_test_account_new ("@carol:hs", "CAROL");
    const MrtcOlmDevice *carol_dev = olm_test_learn_device (alice, carol);
    g_autoptr (GPtrArray) to = g_ptr_array_new ();
    g_autoptr (GPtrArray) missing
        = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_device_free);
    g_autoptr (JsonObject) content = json_object_new ();
    g_autoptr (JsonObject) messages = NULL;

    g_ptr_array_add (to, (gpointer)bob_dev);
    g_ptr_array_add (to, (gpointer)carol_dev);
    json_object_set_string_member (content, "text", "all");
    messages = mrtc_olm_account_encrypt_to_devices (
        alice, to, "m.test", content, missing, &error);
    g_assert_no_error (error);
    fail_unless_equals_int (missing->len, 1);
    fail_unless_equals_string (
        ((MrtcOlmDevice *)missing->pdata[0])->user_id, "@carol:hs");
    fail_unless (json_object_has_member (messages, "@bob:hs"));
    fail_if (json_object_has_member (messages, "@carol:hs"));
    decrypted = mrtc_olm_account_decrypt_to_device (bob, "@alice:hs",
        json_object_get_object_member (
            json_object_get_object_member (messages, "@bob:hs"), "BOB"),
        &error);
    g_assert_no_error (error);
    assert_text (decrypted, "all");
  }
}

GST_END_TEST;

GST_START_TEST (test_olm_rejects)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (MrtcOlmAccount) bob = olm_test_account_new ("@bob:hs", "BOB");
  g_autoptr (MrtcOlmAccount) carol
      = olm_test_account_new ("@carol:hs", "CAROL");
  g_autofree gchar *first = NULL;
  g_autofree gchar *second = NULL;
  g_autofree gchar *tampered = NULL;
  g_autofree gchar *from_carol = NULL;
  const MrtcOlmDevice *bob_dev;
  GError *error = NULL;
  gchar *p;

  olm_test_establish (alice, bob);
  bob_dev = mrtc_olm_account_lookup_device (alice, "@bob:hs", "BOB");
  first = encrypt_text (alice, bob_dev, "one");

  /* Unknown sender device: refused, and nothing consumed, so the same
   * message decrypts once the device's keys are known. */
  fail_unless (decrypt_text (bob, "@alice:hs", first, &error) == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_UNKNOWN_DEVICE);
  g_clear_error (&error);
  olm_test_learn_device (bob, alice);

  /* Claimed by another user (the to-device sender is what the server says;
   * Alice's key is not one of Mallory's devices). */
  fail_unless (decrypt_text (bob, "@mallory:hs", first, &error) == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_UNKNOWN_DEVICE);
  g_clear_error (&error);

  /* Tampered body: does not decrypt. */
  tampered = g_strdup (first);
  p = strstr (tampered, "\"body\":\"") + 40;
  *p = (*p == 'A') ? 'B' : 'A';
  fail_unless (decrypt_text (bob, "@alice:hs", tampered, &error) == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT);
  g_clear_error (&error);

  assert_text (decrypt_text (bob, "@alice:hs", first, &error), "one");
  g_assert_no_error (error);

  /* Replays (pre-key and normal messages) are refused. */
  fail_unless (decrypt_text (bob, "@alice:hs", first, &error) == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT);
  g_clear_error (&error);
  {
    const MrtcOlmDevice *alice_dev
        = mrtc_olm_account_lookup_device (bob, "@alice:hs", "ALICE");
    g_autofree gchar *reply = encrypt_text (bob, alice_dev, "r");

    assert_text (decrypt_text (alice, "@bob:hs", reply, &error), "r");
  }
  second = encrypt_text (alice, bob_dev, "two");
  fail_unless (strstr (second, "\"type\":1") != NULL);
  assert_text (decrypt_text (bob, "@alice:hs", second, &error), "two");
  fail_unless (decrypt_text (bob, "@alice:hs", second, &error) == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT);
  g_clear_error (&error);

  /* A message whose payload names another recipient key (as if it had been
   * meant for Carol) is refused after decryption. */
  {
    g_autoptr (MrtcOlmDevice) wrong = mrtc_olm_device_copy (bob_dev);
    g_autofree gchar *misaddressed = NULL;

    g_free (wrong->ed25519);
    wrong->ed25519 = g_strdup (mrtc_olm_account_get_ed25519 (carol));
    misaddressed = encrypt_text (alice, wrong, "not for bob");
    fail_unless (decrypt_text (bob, "@alice:hs", misaddressed, &error) == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH);
    g_clear_error (&error);
  }

  /* Carol's device is known under Carol; a message from it that the server
   * attributes to Alice is refused. */
  olm_test_establish (carol, bob);
  olm_test_learn_device (bob, carol);
  from_carol = encrypt_text (
      carol, mrtc_olm_account_lookup_device (carol, "@bob:hs", "BOB"), "carol");
  fail_unless (decrypt_text (bob, "@alice:hs", from_carol, &error) == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_UNKNOWN_DEVICE);
  g_clear_error (&error);
  assert_text (decrypt_text (bob, "@carol:hs", from_carol, &error), "carol");
  g_assert_no_error (error);

  /* Malformed envelopes. */
  {
    const gchar *bad[] = {
      "{}",
      "{\"algorithm\":\"m.olm.v1.curve25519-aes-sha2\"}",
      ("{\"algorithm\":\"m.olm.v1.curve25519-aes-sha2\",\"sender_key\":\"x\","
       "\"ciphertext\":[]}"),
      "{\"algorithm\":\"m.megolm.v1.aes-sha2\",\"sender_key\":\"x\"}",
    };
    guint i;

    for (i = 0; i < G_N_ELEMENTS (bad); i++) {
      fail_unless (decrypt_text (bob, "@alice:hs", bad[i], &error) == NULL);
      g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
      g_clear_error (&error);
    }
  }

  /* Device keys that change under the same device id are refused. */
  {
    g_autoptr (MrtcOlmAccount) impostor
        = olm_test_account_new ("@alice:hs", "ALICE");
    g_autoptr (JsonObject) keys = mrtc_olm_account_device_keys (impostor);

    fail_unless (
        mrtc_olm_account_add_device (bob, keys, "@alice:hs", "ALICE", &error)
        == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH);
    g_clear_error (&error);
  }

  /* A forged one-time key signature is refused. */
  {
    g_autoptr (JsonObject) claimed = olm_test_claim_one_time_key (carol);
    GList *m = json_object_get_members (claimed);
    JsonObject *signed_key = json_object_get_object_member (claimed, m->data);
    const MrtcOlmDevice *carol_dev = olm_test_learn_device (alice, carol);

    json_object_set_string_member (
        signed_key, "key", mrtc_olm_account_get_curve25519 (alice));
    fail_if (mrtc_olm_account_create_outbound_session (
        alice, carol_dev, claimed, &error));
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_SIGNATURE);
    g_clear_error (&error);
    g_list_free (m);
  }
}

GST_END_TEST;

GST_START_TEST (test_device_list_update)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (MrtcOlmAccount) bob1 = olm_test_account_new ("@bob:hs", "B1");
  g_autoptr (MrtcOlmAccount) bob2 = olm_test_account_new ("@bob:hs", "B2");
  g_autoptr (JsonObject) devices = json_object_new ();
  g_autoptr (GPtrArray) list = NULL;
  JsonObject *bad;

  json_object_set_object_member (
      devices, "B1", mrtc_olm_account_device_keys (bob1));
  json_object_set_object_member (
      devices, "B2", mrtc_olm_account_device_keys (bob2));
  /* Listed under the wrong device id: skipped. */
  bad = mrtc_olm_account_device_keys (bob2);
  json_object_set_object_member (devices, "B3", bad);
  fail_unless_equals_int (
      mrtc_olm_account_update_user_devices (alice, "@bob:hs", devices), 2);
  list = mrtc_olm_account_list_devices (alice, "@bob:hs");
  fail_unless_equals_int (list->len, 2);
  g_ptr_array_unref (g_steal_pointer (&list));

  json_object_remove_member (devices, "B2");
  fail_unless_equals_int (
      mrtc_olm_account_update_user_devices (alice, "@bob:hs", devices), 1);
  fail_unless (mrtc_olm_account_lookup_device (alice, "@bob:hs", "B2") == NULL);
  fail_unless (mrtc_olm_account_lookup_device (alice, "@bob:hs", "B1") != NULL);
}

GST_END_TEST;

static void
share_room_key (MrtcOlmAccount *from, MrtcOlmAccount *to, const gchar *room_id)
{
  const MrtcOlmDevice *to_dev = mrtc_olm_account_lookup_device (from,
      mrtc_olm_account_get_user_id (to), mrtc_olm_account_get_device_id (to));
  g_autoptr (JsonObject) room_key
      = mrtc_olm_account_megolm_room_key (from, room_id);
  g_autoptr (JsonObject) encrypted = NULL;
  g_autoptr (MrtcOlmDecrypted) decrypted = NULL;
  GError *error = NULL;

  encrypted = mrtc_olm_account_encrypt_to_device (
      from, to_dev, "m.room_key", room_key, &error);
  g_assert_no_error (error);
  mrtc_olm_account_megolm_mark_shared (from, room_id, to_dev);
  decrypted = mrtc_olm_account_decrypt_to_device (
      to, mrtc_olm_account_get_user_id (from), encrypted, &error);
  g_assert_no_error (error);
  fail_unless_equals_string (decrypted->type, "m.room_key");
  fail_unless (mrtc_olm_account_add_room_key (to, decrypted, &error));
  g_assert_no_error (error);
}

static JsonObject *
megolm_text (MrtcOlmAccount *from, const gchar *room_id, const gchar *text)
{
  g_autoptr (JsonObject) content = json_object_new ();
  JsonObject *encrypted;
  GError *error = NULL;

  json_object_set_string_member (content, "body", text);
  encrypted = mrtc_olm_account_megolm_encrypt (
      from, room_id, "m.test", content, &error);
  g_assert_no_error (error);
  return encrypted;
}

GST_START_TEST (test_megolm)
{
  const gchar *room = "!room:hs";
  g_autofree gchar *dir = make_store_dir ();
  g_autofree gchar *path = g_build_filename (dir, "bob.store", NULL);
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (JsonObject) e1 = NULL;
  g_autoptr (JsonObject) e2 = NULL;
  MrtcOlmAccount *bob;
  MrtcOlmGroupDecrypted *d;
  const MrtcOlmDevice *bob_dev;
  GError *error = NULL;

  bob = mrtc_olm_account_open ("@bob:hs", "BOB", path, olm_test_pickle_key,
      sizeof (olm_test_pickle_key), &error);
  g_assert_no_error (error);
  olm_test_establish (alice, bob);
  olm_test_learn_device (bob, alice);
  bob_dev = mrtc_olm_account_lookup_device (alice, "@bob:hs", "BOB");

  /* No session yet: share first. */
  {
    g_autoptr (JsonObject) content = json_object_new ();

    fail_unless (mrtc_olm_account_megolm_encrypt (
                     alice, "!other:hs", "m.t", content, &error)
                 == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_NO_SESSION);
    g_clear_error (&error);
  }

  fail_if (mrtc_olm_account_megolm_shared_with (alice, room, bob_dev));
  share_room_key (alice, bob, room);
  fail_unless (mrtc_olm_account_megolm_shared_with (alice, room, bob_dev));

  e1 = megolm_text (alice, room, "first");
  fail_unless_equals_string (
      json_object_get_string_member (e1, "algorithm"), "m.megolm.v1.aes-sha2");
  fail_unless_equals_string (
      json_object_get_string_member (e1, "device_id"), "ALICE");
  d = mrtc_olm_account_megolm_decrypt (
      bob, room, "@alice:hs", "$e1", 1000, e1, &error);
  g_assert_no_error (error);
  fail_unless_equals_string (d->type, "m.test");
  fail_unless_equals_string (
      json_object_get_string_member (d->content, "body"), "first");
  fail_unless_equals_string (
      d->sender_ed25519, mrtc_olm_account_get_ed25519 (alice));
  fail_unless_equals_int (d->message_index, 0);
  mrtc_olm_group_decrypted_free (d);

  /* The same event again (e.g. from /messages after sync): fine. */
  d = mrtc_olm_account_megolm_decrypt (
      bob, room, "@alice:hs", "$e1", 1000, e1, &error);
  g_assert_no_error (error);
  mrtc_olm_group_decrypted_free (d);

  /* The same ciphertext under another event id: a replay. */
  fail_unless (mrtc_olm_account_megolm_decrypt (
                   bob, room, "@alice:hs", "$replay", 2000, e1, &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_REPLAY);
  g_clear_error (&error);

  /* Another sender using Alice's session, or another room: refused. */
  fail_unless (mrtc_olm_account_megolm_decrypt (
                   bob, room, "@mallory:hs", "$m", 1000, e1, &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH);
  g_clear_error (&error);
  fail_unless (mrtc_olm_account_megolm_decrypt (
                   bob, "!other:hs", "@alice:hs", "$o", 1000, e1, &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_UNKNOWN_SESSION);
  g_clear_error (&error);

  /* Tampered ciphertext. */
  {
    g_autoptr (JsonObject) t = olm_test_roundtrip_json (e1);
    gchar *c = g_strdup (json_object_get_string_member (t, "ciphertext"));

    c[30] = c[30] == 'A' ? 'B' : 'A';
    json_object_set_string_member (t, "ciphertext", c);
    g_free (c);
    fail_unless (mrtc_olm_account_megolm_decrypt (
                     bob, room, "@alice:hs", "$t", 1000, t, &error)
                 == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT);
    g_clear_error (&error);
  }

  /* Alice reads her own event. */
  d = mrtc_olm_account_megolm_decrypt (
      alice, room, "@alice:hs", "$e1", 1000, e1, &error);
  g_assert_no_error (error);
  mrtc_olm_group_decrypted_free (d);

  /* Bob restarts: the session and the replay record persist. */
  fail_unless (mrtc_olm_account_save (bob, &error));
  mrtc_olm_account_free (bob);
  bob = mrtc_olm_account_open ("@bob:hs", "BOB", path, olm_test_pickle_key,
      sizeof (olm_test_pickle_key), &error);
  g_assert_no_error (error);
  fail_unless (mrtc_olm_account_megolm_decrypt (
                   bob, room, "@alice:hs", "$replay", 2000, e1, &error)
               == NULL);
  g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_REPLAY);
  g_clear_error (&error);
  e2 = megolm_text (alice, room, "second");
  d = mrtc_olm_account_megolm_decrypt (
      bob, room, "@alice:hs", "$e2", 3000, e2, &error);
  g_assert_no_error (error);
  fail_unless_equals_string (
      json_object_get_string_member (d->content, "body"), "second");
  mrtc_olm_group_decrypted_free (d);

  /* Without the deprecated sender_key and device_id (MSC3700). */
  {
    g_autoptr (JsonObject) bare = olm_test_roundtrip_json (e2);

    json_object_remove_member (bare, "sender_key");
    json_object_remove_member (bare, "device_id");
    d = mrtc_olm_account_megolm_decrypt (
        bob, room, "@alice:hs", "$e2", 3000, bare, &error);
    g_assert_no_error (error);
    mrtc_olm_group_decrypted_free (d);
  }

  /* Rotation: after the message limit (or a discard) a new session comes,
   * which has to be shared again. */
  mrtc_olm_account_set_megolm_rotation (alice, 0, 3);
  {
    g_autoptr (JsonObject) content = json_object_new ();
    g_autoptr (JsonObject) k1 = NULL;
    g_autoptr (JsonObject) k2 = NULL;
    g_autoptr (JsonObject) e3 = NULL;

    e3 = megolm_text (alice, room, "third");
    g_clear_pointer (&e3, json_object_unref);
    fail_unless (
        mrtc_olm_account_megolm_encrypt (alice, room, "m.t", content, &error)
        == NULL);
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_NO_SESSION);
    g_clear_error (&error);
    k1 = mrtc_olm_account_megolm_room_key (alice, room);
    fail_if (mrtc_olm_account_megolm_shared_with (alice, room, bob_dev));
    mrtc_olm_account_megolm_discard (alice, room);
    k2 = mrtc_olm_account_megolm_room_key (alice, room);
    fail_if (g_str_equal (json_object_get_string_member (k1, "session_id"),
        json_object_get_string_member (k2, "session_id")));
    share_room_key (alice, bob, room);
    e3 = megolm_text (alice, room, "rotated");
    d = mrtc_olm_account_megolm_decrypt (
        bob, room, "@alice:hs", "$e3", 4000, e3, &error);
    g_assert_no_error (error);
    mrtc_olm_group_decrypted_free (d);
  }

  /* A malformed m.room_key is refused. */
  {
    MrtcOlmDecrypted fake = {
      0,
    };
    g_autoptr (JsonObject) content = json_object_new ();

    fake.type = (gchar *)"m.room_key";
    fake.content = content;
    fake.sender = (gchar *)"@alice:hs";
    fake.sender_device = (MrtcOlmDevice *)mrtc_olm_account_lookup_device (
        bob, "@alice:hs", "ALICE");
    json_object_set_string_member (
        content, "algorithm", "m.megolm.v1.aes-sha2");
    json_object_set_string_member (content, "room_id", room);
    json_object_set_string_member (content, "session_id", "abc");
    json_object_set_string_member (content, "session_key", "notakey");
    fail_if (mrtc_olm_account_add_room_key (bob, &fake, &error));
    g_assert_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID);
    g_clear_error (&error);
  }

  mrtc_olm_account_free (bob);
  remove_store_dir (dir);
}

GST_END_TEST;

/* Random corruptions of valid messages: every one is either refused with
 * an error or (rarely, when the corruption hits something unchecked)
 * accepted, never a crash. Run under valgrind to see invalid reads. */
static void
mutate_and_feed (const gchar *text, GRand *rand,
    void (*feed) (JsonObject *object, gpointer data), gpointer data)
{
  gsize len = strlen (text);
  guint round;

  for (round = 0; round < 300; round++) {
    g_autofree gchar *copy = g_strdup (text);
    g_autoptr (JsonObject) object = NULL;
    guint n = g_rand_int_range (rand, 1, 4), k;

    for (k = 0; k < n; k++) {
      gsize at = g_rand_int_range (rand, 0, (gint32)len);

      switch (g_rand_int_range (rand, 0, 3)) {
        case 0:
          copy[at] = (gchar)g_rand_int_range (rand, 0x20, 0x7f);
          break;
        case 1:
          copy[at] = '\0';
          break;
        default:
          copy[at] = copy[g_rand_int_range (rand, 0, (gint32)len)];
      }
    }
    object = mrtc_olm_json_object_from_string (copy, -1, NULL);
    if (object != NULL)
      feed (object, data);
  }
}

static void
feed_olm (JsonObject *object, gpointer data)
{
  GError *error = NULL;
  MrtcOlmDecrypted *d
      = mrtc_olm_account_decrypt_to_device (data, "@alice:hs", object, &error);

  fail_unless ((d == NULL) == (error != NULL));
  g_clear_error (&error);
  mrtc_olm_decrypted_free (d);
}

static void
feed_megolm (JsonObject *object, gpointer data)
{
  GError *error = NULL;
  MrtcOlmGroupDecrypted *d = mrtc_olm_account_megolm_decrypt (
      data, "!room:hs", "@alice:hs", "$x", 1, object, &error);

  fail_unless ((d == NULL) == (error != NULL));
  g_clear_error (&error);
  mrtc_olm_group_decrypted_free (d);
}

static void
feed_media_key (JsonObject *object, gpointer data)
{
  GError *error = NULL;
  MrtcOlmMediaKeyContent *c = mrtc_olm_media_key_content_parse (object, &error);

  fail_unless ((c == NULL) == (error != NULL));
  g_clear_error (&error);
  mrtc_olm_media_key_content_free (c);
}

static void
feed_device_keys (JsonObject *object, gpointer data)
{
  GError *error = NULL;
  MrtcOlmDevice *d
      = mrtc_olm_verify_device_keys (object, "@alice:hs", "ALICE", &error);

  fail_unless ((d == NULL) == (error != NULL));
  g_clear_error (&error);
  mrtc_olm_device_free (d);
}

GST_START_TEST (test_corrupted_input)
{
  g_autoptr (MrtcOlmAccount) alice
      = olm_test_account_new ("@alice:hs", "ALICE");
  g_autoptr (MrtcOlmAccount) bob = olm_test_account_new ("@bob:hs", "BOB");
  g_autoptr (GRand) rand = g_rand_new_with_seed (6);
  g_autoptr (JsonObject) event = NULL;
  g_autoptr (JsonObject) media = NULL;
  g_autoptr (JsonObject) keys = NULL;
  g_autofree gchar *olm_text = NULL;
  g_autofree gchar *megolm_text_ = NULL;
  g_autofree gchar *media_text = NULL;
  g_autofree gchar *keys_text = NULL;
  const MrtcOlmDevice *bob_dev;
  guint8 key[16] = { 1, 2, 3 };
  guint i;

  olm_test_establish (alice, bob);
  olm_test_learn_device (bob, alice);
  bob_dev = mrtc_olm_account_lookup_device (alice, "@bob:hs", "BOB");
  share_room_key (alice, bob, "!room:hs");
  event = megolm_text (alice, "!room:hs", "corrupt me");
  megolm_text_ = mrtc_olm_json_object_to_string (event);
  media = mrtc_olm_media_key_content_build (
      "!room:hs", 1, key, 16, "ALICE", "m", 5);
  media_text = mrtc_olm_json_object_to_string (media);
  keys = mrtc_olm_account_device_keys (alice);
  keys_text = mrtc_olm_json_object_to_string (keys);

  for (i = 0; i < 3; i++) {
    g_free (olm_text);
    olm_text = encrypt_text (alice, bob_dev, "corrupt me");
    mutate_and_feed (olm_text, rand, feed_olm, bob);
  }
  mutate_and_feed (megolm_text_, rand, feed_megolm, bob);
  mutate_and_feed (media_text, rand, feed_media_key, NULL);
  mutate_and_feed (keys_text, rand, feed_device_keys, NULL);

  /* The sessions still work afterwards. (An unchanged copy may have been
   * accepted above, so the original message itself may be used up.) */
  {
    g_autofree gchar *fresh = encrypt_text (alice, bob_dev, "still fine");
    g_autoptr (JsonObject) event2 = megolm_text (alice, "!room:hs", "ok");
    GError *error = NULL;
    MrtcOlmGroupDecrypted *d;

    assert_text (decrypt_text (bob, "@alice:hs", fresh, &error), "still fine");
    g_assert_no_error (error);
    d = mrtc_olm_account_megolm_decrypt (
        bob, "!room:hs", "@alice:hs", "$good", 1, event2, &error);
    g_assert_no_error (error);
    mrtc_olm_group_decrypted_free (d);
  }
}

GST_END_TEST;

static Suite *
olmaccount_suite (void)
{
  Suite *s = suite_create ("olmaccount");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_canonical_json);
  tcase_add_test (tc, test_base64_strict);
  tcase_add_test (tc, test_device_keys_signature);
  tcase_add_test (tc, test_one_time_keys);
  tcase_add_test (tc, test_store_persist_reload);
  tcase_add_test (tc, test_olm_both_ways_and_reuse);
  tcase_add_test (tc, test_olm_rejects);
  tcase_add_test (tc, test_device_list_update);
  tcase_add_test (tc, test_megolm);
  tcase_add_test (tc, test_corrupted_input);
  return s;
}

GST_CHECK_MAIN (olmaccount);
