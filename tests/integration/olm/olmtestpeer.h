/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Test peers for the Olm integration and interop tests: fresh users on the
 * local Synapse, each with an MrtcClient, an MrtcOlmMachine and the
 * MatrixRTC call keys; a capture of every log line (GLib and GStreamer, at
 * every level) to check that no secret is ever logged. */

#ifndef __OLM_TEST_PEER_H__
#define __OLM_TEST_PEER_H__

#include "mrtcolmcallkeys.h"

G_BEGIN_DECLS

#define OLM_TEST_WAIT_US (30 * G_USEC_PER_SEC)

typedef struct
{
  gchar *identity;
  guint index;
  GBytes *key;
  gchar *user_id;
  gchar *device_id;
} OlmTestKey;

void olm_test_key_free (OlmTestKey *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OlmTestKey, olm_test_key_free)

typedef struct
{
  gchar *localpart;
  gchar *password;
  gchar *user_id;
  gchar *device_id;
  gchar *store_path;
  gchar *member_id;
  guint8 pickle_key[32];
  MrtcClient *client;
  MrtcOlmMachine *machine;
  MrtcOlmCallKeys *keys;
  GAsyncQueue *received;    /* OlmTestKey from key-received */
  GAsyncQueue *own;         /* OlmTestKey from own-key */
  GAsyncQueue *room_events; /* JsonObject text (gchar *) */
  GAsyncQueue *to_device;   /* MrtcOlmDecrypted type (gchar *) */
  GAsyncQueue *room_keys;   /* session_key of m.room_key received (gchar *) */
  GPtrArray *tokens;        /* access tokens of its logins (gchar *) */
} OlmTestPeer;

void olm_test_capture_logs (void);
gboolean olm_test_logs_contain (const gchar *needle);
void olm_test_assert_secret_not_logged (const guint8 *data, gsize len);
void olm_test_assert_text_not_logged (const gchar *text);
void olm_test_assert_room_keys_not_logged (OlmTestPeer *peer);
gsize olm_test_logs_length (void);

MrtcClient *olm_test_admin_client (void);
gchar *olm_test_register_user (
    const gchar *prefix, gchar **localpart, gchar **password);

OlmTestPeer *olm_test_peer_new (const gchar *prefix, const gchar *store_dir);
gboolean olm_test_peer_login (OlmTestPeer *peer, const gchar *device_id,
    const gchar *store_dir, GError **error);
void olm_test_peer_start_keys (OlmTestPeer *peer, const gchar *room_id);
void olm_test_peer_stop (OlmTestPeer *peer);
void olm_test_peer_free (OlmTestPeer *peer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OlmTestPeer, olm_test_peer_free)

MrtcOlmMember *olm_test_peer_member (OlmTestPeer *peer);
gchar *olm_test_create_encrypted_room (
    OlmTestPeer *creator, OlmTestPeer **others, guint n_others);

OlmTestKey *olm_test_wait_key (
    GAsyncQueue *queue, const gchar *user_id, guint index);
gchar *olm_test_wait_string (GAsyncQueue *queue, const gchar *needle);

G_END_DECLS

#endif /* __OLM_TEST_PEER_H__ */
