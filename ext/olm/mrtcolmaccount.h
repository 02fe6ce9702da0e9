/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_OLM_ACCOUNT_H__
#define __MRTC_OLM_ACCOUNT_H__

#include "mrtcolmutil.h"

G_BEGIN_DECLS

/**
 * MrtcOlmAccount:
 *
 * One Matrix device's end-to-end crypto state: its Olm account (identity
 * and one-time keys), the verified devices of others, Olm sessions, Megolm
 * sessions. No I/O but the store file: the Matrix client uploads, claims,
 * queries and sends what this object produces, and feeds it what arrives.
 * Not thread-safe: use it from one thread (the client's main context).
 *
 * How the client drives it:
 * - Login: mrtc_olm_account_open() with the device id and a store path;
 *   then POST /keys/upload with mrtc_olm_account_upload_body() (after
 *   mrtc_olm_account_generate_one_time_keys() with the count from
 *   mrtc_olm_account_one_time_keys_to_generate() and
 *   mrtc_olm_account_ensure_fallback_key()); on success
 *   mrtc_olm_account_mark_published() and mrtc_olm_account_save(). Repeat
 *   when sync reports fewer `signed_curve25519` one-time keys.
 * - Device lists: POST /keys/query for the room's members (and again for
 *   users in sync `device_lists.changed`);
 *   mrtc_olm_account_update_user_devices() per user.
 * - Sending to devices: for devices without mrtc_olm_account_has_session(),
 *   POST /keys/claim (`signed_curve25519`) and
 *   mrtc_olm_account_create_outbound_session(); then
 *   mrtc_olm_account_encrypt_to_devices() gives the `messages` of
 *   PUT /sendToDevice/m.room.encrypted/{txn}; save before sending.
 * - Receiving: each sync to-device `m.room.encrypted` goes to
 *   mrtc_olm_account_decrypt_to_device() (on
 *   %MRTC_OLM_ERROR_UNKNOWN_DEVICE query the sender's keys and retry once);
 *   `m.room_key` results go to mrtc_olm_account_add_room_key(),
 *   `io.element.call.encryption_keys` ones to the media key receiver.
 * - Encrypted rooms: before sending, mrtc_olm_account_megolm_room_key()
 *   and share it (as `m.room_key`) with every member device for which
 *   mrtc_olm_account_megolm_shared_with() is %FALSE, marking each; then
 *   mrtc_olm_account_megolm_encrypt(). Call
 *   mrtc_olm_account_megolm_discard() when a member or device leaves. Room
 *   events go to mrtc_olm_account_megolm_decrypt().
 *
 * Lifetimes: the #MrtcOlmDevice pointers that mrtc_olm_account_add_device(),
 * mrtc_olm_account_lookup_device() and mrtc_olm_account_list_devices()
 * return are owned by the account and stay valid until
 * mrtc_olm_account_update_user_devices() removes that device (when a
 * /keys/query answer no longer lists it) or the account is freed. Do not
 * keep them across a device list update: copy them
 * (mrtc_olm_device_copy()) or look them up again.
 *
 * Key material: libolm state, pickles, the store, #MrtcOlmMediaKey* key
 * bytes and the buffers used here are wiped after use. Key material that
 * travels as JSON cannot be: the `session_key` of
 * mrtc_olm_account_megolm_room_key() and of a received `m.room_key`, and
 * the media keys in `io.element.call.encryption_keys` contents, are
 * json-glib strings (and copies json-glib makes while parsing and writing
 * JSON), which are freed without being overwritten. Drop such objects
 * promptly.
 *
 * Untrusted input: decrypted payloads over 64 KiB
 * (%MRTC_OLM_MAX_PAYLOAD_LEN), JSON nested deeper than 64 levels and JSON
 * holding NUL characters are refused (%MRTC_OLM_ERROR_INVALID). State that
 * peers drive is bounded: 8 Olm sessions and 256 ids of evicted ones per
 * peer device, 4096 pinned keys of removed devices, 256 Megolm sessions
 * per sending device and 4096 in all, 1024 replay records per Megolm
 * session (the oldest of each dropped).
 */
typedef struct _MrtcOlmAccount MrtcOlmAccount;

/**
 * MrtcOlmDecrypted:
 * @type: the inner event type (e.g. `m.room_key`)
 * @content: the inner event content
 * @sender: the to-device sender (checked against the Olm payload)
 * @sender_device: the sender's device, known and verified, whose Curve25519
 *   key the message was encrypted with
 *
 * A to-device event that arrived Olm-encrypted from a known device and
 * passed every check. Only mrtc_olm_account_decrypt_to_device() makes one.
 * @content may hold key material (see #MrtcOlmAccount) that is not wiped
 * when it is freed.
 */
typedef struct
{
  gchar *type;
  JsonObject *content;
  gchar *sender;
  MrtcOlmDevice *sender_device;
} MrtcOlmDecrypted;

void mrtc_olm_decrypted_free (MrtcOlmDecrypted *decrypted);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MrtcOlmDecrypted, mrtc_olm_decrypted_free)

/**
 * MrtcOlmGroupDecrypted:
 * @type: the room event type
 * @content: the room event content
 * @message_index: the Megolm message index
 * @sender_curve25519: the Curve25519 key of the device that shared the
 *   session
 * @sender_ed25519: the Ed25519 key it claimed (verified via Olm)
 */
typedef struct
{
  gchar *type;
  JsonObject *content;
  guint32 message_index;
  gchar *sender_curve25519;
  gchar *sender_ed25519;
} MrtcOlmGroupDecrypted;

void mrtc_olm_group_decrypted_free (MrtcOlmGroupDecrypted *decrypted);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (
    MrtcOlmGroupDecrypted, mrtc_olm_group_decrypted_free)

/* Account and store */
MrtcOlmAccount *mrtc_olm_account_open (const gchar *user_id,
    const gchar *device_id, const gchar *store_path, const guint8 *pickle_key,
    gsize pickle_key_len, GError **error);
gboolean mrtc_olm_account_save (MrtcOlmAccount *account, GError **error);
gboolean mrtc_olm_account_is_dirty (MrtcOlmAccount *account);
void mrtc_olm_account_free (MrtcOlmAccount *account);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MrtcOlmAccount, mrtc_olm_account_free)

const gchar *mrtc_olm_account_get_user_id (MrtcOlmAccount *account);
const gchar *mrtc_olm_account_get_device_id (MrtcOlmAccount *account);
const gchar *mrtc_olm_account_get_curve25519 (MrtcOlmAccount *account);
const gchar *mrtc_olm_account_get_ed25519 (MrtcOlmAccount *account);
gchar *mrtc_olm_account_sign (MrtcOlmAccount *account, const gchar *message);
gboolean mrtc_olm_account_sign_json (
    MrtcOlmAccount *account, JsonObject *object, GError **error);

/* Keys for /keys/upload */
JsonObject *mrtc_olm_account_device_keys (MrtcOlmAccount *account);
gboolean mrtc_olm_account_device_keys_published (MrtcOlmAccount *account);
guint mrtc_olm_account_one_time_keys_to_generate (
    MrtcOlmAccount *account, gint64 server_count);
void mrtc_olm_account_generate_one_time_keys (
    MrtcOlmAccount *account, guint count);
JsonObject *mrtc_olm_account_one_time_keys (MrtcOlmAccount *account);
gboolean mrtc_olm_account_ensure_fallback_key (
    MrtcOlmAccount *account, JsonArray *server_unused_fallback_types);
JsonObject *mrtc_olm_account_fallback_keys (MrtcOlmAccount *account);
JsonObject *mrtc_olm_account_upload_body (MrtcOlmAccount *account);
void mrtc_olm_account_mark_published (MrtcOlmAccount *account);

/* Devices of others (from /keys/query) */
const MrtcOlmDevice *mrtc_olm_account_add_device (MrtcOlmAccount *account,
    JsonObject *device_keys, const gchar *user_id, const gchar *device_id,
    GError **error);
guint mrtc_olm_account_update_user_devices (
    MrtcOlmAccount *account, const gchar *user_id, JsonObject *devices);
const MrtcOlmDevice *mrtc_olm_account_lookup_device (
    MrtcOlmAccount *account, const gchar *user_id, const gchar *device_id);
GPtrArray *mrtc_olm_account_list_devices (
    MrtcOlmAccount *account, const gchar *user_id);

/* Olm sessions and to-device messages */
gboolean mrtc_olm_account_has_session (
    MrtcOlmAccount *account, const MrtcOlmDevice *device);
gboolean mrtc_olm_account_create_outbound_session (MrtcOlmAccount *account,
    const MrtcOlmDevice *device, JsonObject *claimed_keys, GError **error);
JsonObject *mrtc_olm_account_encrypt_to_device (MrtcOlmAccount *account,
    const MrtcOlmDevice *recipient, const gchar *type, JsonObject *content,
    GError **error);
JsonObject *mrtc_olm_account_encrypt_to_devices (MrtcOlmAccount *account,
    GPtrArray *recipients, const gchar *type, JsonObject *content,
    GPtrArray *missing, GError **error);
MrtcOlmDecrypted *mrtc_olm_account_decrypt_to_device (MrtcOlmAccount *account,
    const gchar *sender, JsonObject *content, GError **error);

/* Megolm */
void mrtc_olm_account_set_megolm_rotation (
    MrtcOlmAccount *account, gint64 period_ms, guint32 max_messages);
JsonObject *mrtc_olm_account_megolm_room_key (
    MrtcOlmAccount *account, const gchar *room_id);
gboolean mrtc_olm_account_megolm_shared_with (
    MrtcOlmAccount *account, const gchar *room_id, const MrtcOlmDevice *device);
void mrtc_olm_account_megolm_mark_shared (
    MrtcOlmAccount *account, const gchar *room_id, const MrtcOlmDevice *device);
void mrtc_olm_account_megolm_discard (
    MrtcOlmAccount *account, const gchar *room_id);
JsonObject *mrtc_olm_account_megolm_encrypt (MrtcOlmAccount *account,
    const gchar *room_id, const gchar *type, JsonObject *content,
    GError **error);
gboolean mrtc_olm_account_add_room_key (MrtcOlmAccount *account,
    const MrtcOlmDecrypted *room_key_event, GError **error);
MrtcOlmGroupDecrypted *mrtc_olm_account_megolm_decrypt (MrtcOlmAccount *account,
    const gchar *room_id, const gchar *sender, const gchar *event_id,
    gint64 origin_server_ts, JsonObject *content, GError **error);

G_END_DECLS

#endif /* __MRTC_OLM_ACCOUNT_H__ */
