/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_OLM_UTIL_H__
#define __MRTC_OLM_UTIL_H__

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define MRTC_OLM_ALGORITHM_OLM "m.olm.v1.curve25519-aes-sha2"
#define MRTC_OLM_ALGORITHM_MEGOLM "m.megolm.v1.aes-sha2"

/* Separates the parts of composite hash table keys (cannot occur in
 * Matrix ids, room ids or base64). */
#define MRTC_OLM_SEP "\x1f"

/* Deepest nesting of arrays and objects accepted in decrypted payloads
 * (mrtc_olm_json_payload_from_string()). */
#define MRTC_OLM_JSON_MAX_DEPTH 64 /* = MRTC_JSON_MAX_DEPTH_PAYLOAD */
/* Deepest nesting accepted by mrtc_olm_json_object_from_string(): above
 * what a homeserver passes on (Synapse's JSON decoder stops near 1000
 * levels), far below what exhausts a thread's stack in json-glib. */
#define MRTC_OLM_JSON_MAX_DEPTH_ANY 2048 /* = MRTC_JSON_MAX_DEPTH_ANY */
/* Longest decrypted Olm or Megolm payload accepted (a Matrix event is at
 * most 64 KiB). */
#define MRTC_OLM_MAX_PAYLOAD_LEN 65536

#define MRTC_OLM_ERROR (mrtc_olm_error_quark ())
GQuark mrtc_olm_error_quark (void);

/**
 * MrtcOlmError:
 * @MRTC_OLM_ERROR_INVALID: malformed input (JSON, base64, fields)
 * @MRTC_OLM_ERROR_SIGNATURE: a signature is missing or does not verify
 * @MRTC_OLM_ERROR_UNKNOWN_DEVICE: the sender's device is not known (query
 *   its keys and retry)
 * @MRTC_OLM_ERROR_NO_SESSION: no Olm session with that device (claim a
 *   one-time key first)
 * @MRTC_OLM_ERROR_UNKNOWN_SESSION: no Megolm session for that message
 * @MRTC_OLM_ERROR_DECRYPT: the ciphertext does not decrypt
 * @MRTC_OLM_ERROR_MISMATCH: decrypted fields do not match the envelope
 *   (sender, recipient, keys, room)
 * @MRTC_OLM_ERROR_REPLAY: a Megolm message index was already used by
 *   another event
 * @MRTC_OLM_ERROR_STORE: the store cannot be read or written
 * @MRTC_OLM_ERROR_INTERNAL: libolm or OpenSSL failed
 */
typedef enum
{
  MRTC_OLM_ERROR_INVALID,
  MRTC_OLM_ERROR_SIGNATURE,
  MRTC_OLM_ERROR_UNKNOWN_DEVICE,
  MRTC_OLM_ERROR_NO_SESSION,
  MRTC_OLM_ERROR_UNKNOWN_SESSION,
  MRTC_OLM_ERROR_DECRYPT,
  MRTC_OLM_ERROR_MISMATCH,
  MRTC_OLM_ERROR_REPLAY,
  MRTC_OLM_ERROR_STORE,
  MRTC_OLM_ERROR_INTERNAL,
} MrtcOlmError;

/**
 * MrtcOlmDevice:
 * @user_id: the Matrix user owning the device
 * @device_id: the device id
 * @curve25519: its Curve25519 identity key (unpadded base64)
 * @ed25519: its Ed25519 signing key (unpadded base64)
 *
 * A device whose self-signed device keys have been verified.
 */
typedef struct
{
  gchar *user_id;
  gchar *device_id;
  gchar *curve25519;
  gchar *ed25519;
} MrtcOlmDevice;

MrtcOlmDevice *mrtc_olm_device_new (const gchar *user_id,
    const gchar *device_id, const gchar *curve25519, const gchar *ed25519);
MrtcOlmDevice *mrtc_olm_device_copy (const MrtcOlmDevice *device);
void mrtc_olm_device_free (MrtcOlmDevice *device);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MrtcOlmDevice, mrtc_olm_device_free)

void mrtc_olm_wipe (gpointer data, gsize len);
void mrtc_olm_wipe_string (gchar *str);
void mrtc_olm_random_bytes (guint8 *out, gsize len);

gchar *mrtc_olm_base64_encode_unpadded (const guint8 *data, gsize len);
guint8 *mrtc_olm_base64_decode_strict (
    const gchar *text, gboolean allow_url, gsize *out_len);

void mrtc_olm_json_string_append (GString *out, const gchar *str);
gchar *mrtc_olm_canonical_json (JsonNode *node, GError **error);
gchar *mrtc_olm_canonical_json_for_signing (JsonObject *object, GError **error);
gchar *mrtc_olm_json_object_to_string (JsonObject *object);
gboolean mrtc_olm_json_check_text (
    const gchar *text, gssize len, guint max_depth, GError **error);
JsonObject *mrtc_olm_json_object_from_string (
    const gchar *text, gssize len, GError **error);
JsonObject *mrtc_olm_json_payload_from_string (
    const gchar *text, gsize len, GError **error);
gboolean mrtc_olm_json_node_get_safe_int (JsonNode *node, gint64 *out);

const gchar *mrtc_olm_json_get_string (JsonObject *object, const gchar *member);
JsonObject *mrtc_olm_json_get_object (JsonObject *object, const gchar *member);

gboolean mrtc_olm_verify_signature (JsonObject *object, const gchar *user_id,
    const gchar *key_id, const gchar *ed25519, GError **error);
MrtcOlmDevice *mrtc_olm_verify_device_keys (JsonObject *device_keys,
    const gchar *expected_user_id, const gchar *expected_device_id,
    GError **error);

G_END_DECLS

#endif /* __MRTC_OLM_UTIL_H__ */
