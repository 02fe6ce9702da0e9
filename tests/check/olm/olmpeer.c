/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * olmpeer: a command-line face of ext/olm for the offline interop test
 * (olm-interop.mjs drives it against matrix-sdk-crypto-wasm, the crypto of
 * matrix-js-sdk 43). Each call opens the account from its store, does one
 * step and saves, so the test also exercises persistence.
 *
 *   olmpeer STORE USER DEVICE upload
 *   olmpeer STORE USER DEVICE query                 < /keys/query response
 *   olmpeer STORE USER DEVICE claim                 < /keys/claim response
 *   olmpeer STORE USER DEVICE encrypt TO_USER TO_DEVICE TYPE  < content
 *   olmpeer STORE USER DEVICE decrypt SENDER ROOM   < m.room.encrypted content
 *   olmpeer STORE USER DEVICE media-key ROOM
 *   olmpeer STORE USER DEVICE room-key ROOM TO_USER TO_DEVICE
 *   olmpeer STORE USER DEVICE megolm-encrypt ROOM TYPE        < content
 *   olmpeer STORE USER DEVICE megolm-decrypt ROOM SENDER EVENT_ID TS < content
 *
 * JSON results go to stdout; errors to stderr with exit status 1.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtcolmaccount.h"
#include "mrtcolmmediakeys.h"

static const guint8 peer_pickle_key[32] = "olmpeer-olmpeer-olmpeer-olmpeer!";

static JsonObject *
read_stdin_object (void)
{
  GString *text = g_string_new (NULL);
  gchar buf[4096];
  gsize n;
  GError *error = NULL;
  JsonObject *object;

  while ((n = fread (buf, 1, sizeof (buf), stdin)) > 0)
    g_string_append_len (text, buf, (gssize)n);
  object = mrtc_olm_json_object_from_string (text->str, -1, &error);
  g_string_free (text, TRUE);
  if (object == NULL) {
    g_printerr ("stdin: %s\n", error->message);
    exit (1);
  }
  return object;
}

static void
print_object (JsonObject *object)
{
  gchar *text = mrtc_olm_json_object_to_string (object);

  g_print ("%s\n", text);
  g_free (text);
  json_object_unref (object);
}

static void
fail (GError *error)
{
  g_printerr ("error: %s\n", error->message);
  exit (1);
}

static const MrtcOlmDevice *
need_device (
    MrtcOlmAccount *account, const gchar *user_id, const gchar *device_id)
{
  const MrtcOlmDevice *device
      = mrtc_olm_account_lookup_device (account, user_id, device_id);

  if (device == NULL) {
    g_printerr ("unknown device %s %s\n", user_id, device_id);
    exit (1);
  }
  return device;
}

static JsonObject *
decrypt (MrtcOlmAccount *account, const gchar *sender, const gchar *room)
{
  g_autoptr (JsonObject) content = read_stdin_object ();
  g_autoptr (MrtcOlmDecrypted) decrypted = NULL;
  JsonObject *out = json_object_new ();
  GError *error = NULL;

  decrypted
      = mrtc_olm_account_decrypt_to_device (account, sender, content, &error);
  if (decrypted == NULL)
    fail (error);
  if (g_str_equal (decrypted->type, "m.room_key")
      && !mrtc_olm_account_add_room_key (account, decrypted, &error))
    fail (error);
  if (g_str_equal (decrypted->type, MRTC_OLM_MEDIA_KEY_EVENT_TYPE)) {
    g_autoptr (MrtcOlmMediaKeyReceiver) receiver
        = mrtc_olm_media_key_receiver_new (room, NULL, NULL);
    g_autoptr (GPtrArray) members
        = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
    g_autoptr (MrtcOlmMediaKeyDelivery) delivery = NULL;
    g_autofree gchar *identity = g_strdup_printf (
        "%s:%s", decrypted->sender, decrypted->sender_device->device_id);

    g_ptr_array_add (
        members, mrtc_olm_member_new (decrypted->sender,
                     decrypted->sender_device->device_id, NULL, identity, 1));
    mrtc_olm_media_key_receiver_update_members (receiver, members);
    if (!mrtc_olm_media_key_receiver_receive (receiver, decrypted, &error))
      fail (error);
    delivery = mrtc_olm_media_key_receiver_pop_delivery (receiver);
    if (delivery == NULL) {
      g_printerr ("media key not delivered\n");
      exit (1);
    }
    json_object_set_string_member (
        out, "delivered_identity", delivery->identity);
    json_object_set_int_member (out, "delivered_index", delivery->index);
    json_object_set_int_member (
        out, "delivered_key_len", (gint64)delivery->key_len);
  }
  json_object_set_string_member (out, "type", decrypted->type);
  json_object_set_object_member (
      out, "content", json_object_ref (decrypted->content));
  json_object_set_string_member (
      out, "sender_device", decrypted->sender_device->device_id);
  return out;
}

static void
claim (MrtcOlmAccount *account)
{
  g_autoptr (JsonObject) response = read_stdin_object ();
  JsonObject *otks = json_object_get_object_member (response, "one_time_keys");
  GList *users = otks ? json_object_get_members (otks) : NULL, *u;
  GError *error = NULL;

  for (u = users; u != NULL; u = u->next) {
    JsonObject *per_user = json_object_get_object_member (otks, u->data);
    GList *devices = json_object_get_members (per_user), *d;

    for (d = devices; d != NULL; d = d->next) {
      if (!mrtc_olm_account_create_outbound_session (account,
              need_device (account, u->data, d->data),
              json_object_get_object_member (per_user, d->data), &error))
        fail (error);
    }
    g_list_free (devices);
  }
  g_list_free (users);
}

static void
query (MrtcOlmAccount *account)
{
  g_autoptr (JsonObject) response = read_stdin_object ();
  JsonObject *device_keys
      = json_object_get_object_member (response, "device_keys");
  GList *users = device_keys ? json_object_get_members (device_keys) : NULL;
  GList *u;

  for (u = users; u != NULL; u = u->next)
    mrtc_olm_account_update_user_devices (
        account, u->data, json_object_get_object_member (device_keys, u->data));
  g_list_free (users);
}

int
main (int argc, char **argv)
{
  g_autoptr (MrtcOlmAccount) account = NULL;
  GError *error = NULL;
  const gchar *cmd;

  if (argc < 5) {
    g_printerr ("usage: olmpeer STORE USER DEVICE COMMAND [ARGS]\n");
    return 2;
  }
  account = mrtc_olm_account_open (argv[2], argv[3], argv[1], peer_pickle_key,
      sizeof (peer_pickle_key), &error);
  if (account == NULL)
    fail (error);
  cmd = argv[4];

  if (g_str_equal (cmd, "upload")) {
    guint n = mrtc_olm_account_one_time_keys_to_generate (account, 0);

    mrtc_olm_account_generate_one_time_keys (account, n);
    mrtc_olm_account_ensure_fallback_key (account, NULL);
    print_object (mrtc_olm_account_upload_body (account));
    mrtc_olm_account_mark_published (account);
  } else if (g_str_equal (cmd, "query")) {
    query (account);
  } else if (g_str_equal (cmd, "claim")) {
    claim (account);
  } else if (g_str_equal (cmd, "encrypt") && argc == 8) {
    g_autoptr (JsonObject) content = read_stdin_object ();
    JsonObject *out = mrtc_olm_account_encrypt_to_device (account,
        need_device (account, argv[5], argv[6]), argv[7], content, &error);

    if (out == NULL)
      fail (error);
    print_object (out);
  } else if (g_str_equal (cmd, "decrypt") && argc == 7) {
    print_object (decrypt (account, argv[5], argv[6]));
  } else if (g_str_equal (cmd, "media-key") && argc == 6) {
    guint8 key[MRTC_OLM_MEDIA_KEY_LEN];

    mrtc_olm_random_bytes (key, sizeof (key));
    print_object (mrtc_olm_media_key_content_build (argv[5], 3, key,
        sizeof (key), argv[3], "olmpeer-member", g_get_real_time () / 1000));
  } else if (g_str_equal (cmd, "room-key") && argc == 8) {
    g_autoptr (JsonObject) room_key
        = mrtc_olm_account_megolm_room_key (account, argv[5]);
    const MrtcOlmDevice *device = need_device (account, argv[6], argv[7]);
    JsonObject *out = mrtc_olm_account_encrypt_to_device (
        account, device, "m.room_key", room_key, &error);

    if (out == NULL)
      fail (error);
    mrtc_olm_account_megolm_mark_shared (account, argv[5], device);
    print_object (out);
  } else if (g_str_equal (cmd, "megolm-encrypt") && argc == 7) {
    g_autoptr (JsonObject) content = read_stdin_object ();
    JsonObject *out = mrtc_olm_account_megolm_encrypt (
        account, argv[5], argv[6], content, &error);

    if (out == NULL)
      fail (error);
    print_object (out);
  } else if (g_str_equal (cmd, "megolm-decrypt") && argc == 9) {
    g_autoptr (JsonObject) content = read_stdin_object ();
    g_autoptr (MrtcOlmGroupDecrypted) decrypted = NULL;
    JsonObject *out = json_object_new ();

    decrypted = mrtc_olm_account_megolm_decrypt (account, argv[5], argv[6],
        argv[7], g_ascii_strtoll (argv[8], NULL, 10), content, &error);
    if (decrypted == NULL)
      fail (error);
    json_object_set_string_member (out, "type", decrypted->type);
    json_object_set_object_member (
        out, "content", json_object_ref (decrypted->content));
    print_object (out);
  } else {
    g_printerr ("unknown command or wrong arguments: %s\n", cmd);
    return 2;
  }

  if (!mrtc_olm_account_save (account, &error))
    fail (error);
  return 0;
}
