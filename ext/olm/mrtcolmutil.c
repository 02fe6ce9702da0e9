/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * Helpers shared by the Olm code: the error domain, strict base64, Matrix
 * canonical JSON (for signing) and the verification of signed JSON and of
 * device keys.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mrtcolmutil.h"
#include "mrtcjson.h"

#include <string.h>
#include <math.h>
#include <olm/olm.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

GQuark
mrtc_olm_error_quark (void)
{
  return g_quark_from_static_string ("mrtc-olm-error-quark");
}

/* Canonical JSON numbers are integers in the range of an IEEE double. */
#define MRTC_OLM_JSON_MAX_SAFE_INT G_GINT64_CONSTANT (9007199254740991)

MrtcOlmDevice *
mrtc_olm_device_new (const gchar *user_id, const gchar *device_id,
    const gchar *curve25519, const gchar *ed25519)
{
  MrtcOlmDevice *device = g_new0 (MrtcOlmDevice, 1);

  device->user_id = g_strdup (user_id);
  device->device_id = g_strdup (device_id);
  device->curve25519 = g_strdup (curve25519);
  device->ed25519 = g_strdup (ed25519);
  return device;
}

MrtcOlmDevice *
mrtc_olm_device_copy (const MrtcOlmDevice *device)
{
  return mrtc_olm_device_new (
      device->user_id, device->device_id, device->curve25519, device->ed25519);
}

void
mrtc_olm_device_free (MrtcOlmDevice *device)
{
  if (device == NULL)
    return;
  g_free (device->user_id);
  g_free (device->device_id);
  g_free (device->curve25519);
  g_free (device->ed25519);
  g_free (device);
}

/**
 * mrtc_olm_wipe:
 * @data: memory holding a secret, or %NULL
 * @len: its length
 *
 * Overwrites @data with zeroes in a way the compiler cannot elide.
 */
void
mrtc_olm_wipe (gpointer data, gsize len)
{
  if (data != NULL && len > 0)
    OPENSSL_cleanse (data, len);
}

/**
 * mrtc_olm_wipe_string:
 * @str: (transfer full) (nullable): a string holding a secret
 *
 * Wipes and frees @str.
 */
void
mrtc_olm_wipe_string (gchar *str)
{
  if (str == NULL)
    return;
  mrtc_olm_wipe (str, strlen (str));
  g_free (str);
}

/**
 * mrtc_olm_random_bytes:
 * @out: destination
 * @len: number of bytes
 *
 * Fills @out from OpenSSL's CSPRNG; aborts if it cannot (there is no safe
 * way to continue generating keys without randomness).
 */
void
mrtc_olm_random_bytes (guint8 *out, gsize len)
{
  if (len == 0)
    return;
  if (RAND_bytes (out, (int)len) != 1)
    g_error ("OpenSSL RAND_bytes failed: no randomness for key generation");
}

gchar *
mrtc_olm_base64_encode_unpadded (const guint8 *data, gsize len)
{
  gchar *text = g_base64_encode (data, len);
  gsize n = strlen (text);

  while (n > 0 && text[n - 1] == '=')
    text[--n] = '\0';
  return text;
}

/**
 * mrtc_olm_base64_decode_strict:
 * @text: base64 text, padded or not
 * @allow_url: also accept the URL-safe alphabet (`-`, `_`)
 * @out_len: (out): decoded length
 *
 * Unlike g_base64_decode() this rejects any character outside the alphabet,
 * misplaced padding and impossible lengths.
 *
 * Returns: (transfer full) (nullable): the bytes, or %NULL if @text is not
 *   valid base64. An empty string decodes to an empty (non-%NULL) buffer.
 */
guint8 *
mrtc_olm_base64_decode_strict (
    const gchar *text, gboolean allow_url, gsize *out_len)
{
  gsize len, data_len, i;
  GString *normal;
  guint8 *out;
  gsize decoded_len = 0;

  *out_len = 0;
  if (text == NULL)
    return NULL;
  len = strlen (text);
  data_len = len;
  while (data_len > 0 && text[data_len - 1] == '=')
    data_len--;
  if (len - data_len > 2)
    return NULL;
  if (data_len % 4 == 1)
    return NULL;
  if (len != data_len && len % 4 != 0)
    return NULL;

  normal = g_string_sized_new (data_len + 3);
  for (i = 0; i < data_len; i++) {
    gchar c = text[i];

    if (g_ascii_isalnum (c) || c == '+' || c == '/') {
      g_string_append_c (normal, c);
    } else if (allow_url && c == '-') {
      g_string_append_c (normal, '+');
    } else if (allow_url && c == '_') {
      g_string_append_c (normal, '/');
    } else {
      g_string_free (normal, TRUE);
      return NULL;
    }
  }
  while (normal->len % 4 != 0)
    g_string_append_c (normal, '=');

  if (normal->len == 0) {
    g_string_free (normal, TRUE);
    return g_malloc0 (1);
  }
  out = g_base64_decode (normal->str, &decoded_len);
  g_string_free (normal, TRUE);
  *out_len = decoded_len;
  return out;
}

/**
 * mrtc_olm_json_string_append:
 * @out: string to append to
 * @str: UTF-8 text
 *
 * Appends @str as a JSON string literal exactly as JavaScript's
 * JSON.stringify() writes it (and as Matrix canonical JSON requires):
 * UTF-8 kept as is, only `"`, `\` and control characters escaped.
 */
void
mrtc_olm_json_string_append (GString *out, const gchar *str)
{
  const guchar *p;

  g_string_append_c (out, '"');
  for (p = (const guchar *)str; *p != '\0'; p++) {
    switch (*p) {
      case '"':
        g_string_append (out, "\\\"");
        break;
      case '\\':
        g_string_append (out, "\\\\");
        break;
      case '\b':
        g_string_append (out, "\\b");
        break;
      case '\f':
        g_string_append (out, "\\f");
        break;
      case '\n':
        g_string_append (out, "\\n");
        break;
      case '\r':
        g_string_append (out, "\\r");
        break;
      case '\t':
        g_string_append (out, "\\t");
        break;
      default:
        if (*p < 0x20)
          g_string_append_printf (out, "\\u%04x", *p);
        else
          g_string_append_c (out, (gchar)*p);
    }
  }
  g_string_append_c (out, '"');
}

static gint
compare_member_names (gconstpointer a, gconstpointer b)
{
  /* Byte order of UTF-8 is code point order, as canonical JSON asks. */
  return strcmp (*(const gchar *const *)a, *(const gchar *const *)b);
}

static gboolean
canonical_append (GString *out, JsonNode *node, const gchar *skip_a,
    const gchar *skip_b, guint depth, GError **error)
{
  if (depth > 64) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "JSON nested too deeply");
    return FALSE;
  }

  switch (JSON_NODE_TYPE (node)) {
    case JSON_NODE_NULL:
      g_string_append (out, "null");
      return TRUE;
    case JSON_NODE_OBJECT: {
      JsonObject *object = json_node_get_object (node);
      GList *members = json_object_get_members (object), *l;
      GPtrArray *names = g_ptr_array_new ();
      gboolean first = TRUE;
      guint i;

      for (l = members; l != NULL; l = l->next) {
        const gchar *name = l->data;

        if ((skip_a != NULL && strcmp (name, skip_a) == 0)
            || (skip_b != NULL && strcmp (name, skip_b) == 0))
          continue;
        g_ptr_array_add (names, (gpointer)name);
      }
      g_list_free (members);
      g_ptr_array_sort (names, compare_member_names);

      g_string_append_c (out, '{');
      for (i = 0; i < names->len; i++) {
        const gchar *name = g_ptr_array_index (names, i);

        if (!first)
          g_string_append_c (out, ',');
        first = FALSE;
        mrtc_olm_json_string_append (out, name);
        g_string_append_c (out, ':');
        if (!canonical_append (out, json_object_get_member (object, name), NULL,
                NULL, depth + 1, error)) {
          g_ptr_array_free (names, TRUE);
          return FALSE;
        }
      }
      g_string_append_c (out, '}');
      g_ptr_array_free (names, TRUE);
      return TRUE;
    }
    case JSON_NODE_ARRAY: {
      JsonArray *array = json_node_get_array (node);
      guint i, n = json_array_get_length (array);

      g_string_append_c (out, '[');
      for (i = 0; i < n; i++) {
        if (i > 0)
          g_string_append_c (out, ',');
        if (!canonical_append (out, json_array_get_element (array, i), NULL,
                NULL, depth + 1, error))
          return FALSE;
      }
      g_string_append_c (out, ']');
      return TRUE;
    }
    case JSON_NODE_VALUE: {
      GType type = json_node_get_value_type (node);

      if (type == G_TYPE_STRING) {
        mrtc_olm_json_string_append (out, json_node_get_string (node));
      } else if (type == G_TYPE_BOOLEAN) {
        g_string_append (out, json_node_get_boolean (node) ? "true" : "false");
      } else if (type == G_TYPE_INT64) {
        gint64 v = json_node_get_int (node);

        if (v > MRTC_OLM_JSON_MAX_SAFE_INT || v < -MRTC_OLM_JSON_MAX_SAFE_INT) {
          g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
              "integer out of canonical JSON range");
          return FALSE;
        }
        g_string_append_printf (out, "%" G_GINT64_FORMAT, v);
      } else if (type == G_TYPE_DOUBLE) {
        gdouble v = json_node_get_double (node);

        if (!isfinite (v) || v != floor (v)
            || fabs (v) > (gdouble)MRTC_OLM_JSON_MAX_SAFE_INT) {
          g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
              "canonical JSON allows integers only");
          return FALSE;
        }
        g_string_append_printf (out, "%" G_GINT64_FORMAT, (gint64)v);
      } else {
        g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
            "unsupported JSON value type");
        return FALSE;
      }
      return TRUE;
    }
  }
  g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID, "bad JSON node");
  return FALSE;
}

/**
 * mrtc_olm_canonical_json:
 * @node: a JSON value
 * @error: return location for an error
 *
 * Serialises @node as Matrix canonical JSON: members sorted by code point,
 * no insignificant white space, integers only, UTF-8 unescaped.
 *
 * Returns: (transfer full) (nullable): the text, or %NULL with @error set.
 */
gchar *
mrtc_olm_canonical_json (JsonNode *node, GError **error)
{
  GString *out = g_string_new (NULL);

  if (!canonical_append (out, node, NULL, NULL, 0, error)) {
    g_string_free (out, TRUE);
    return NULL;
  }
  return g_string_free (out, FALSE);
}

/**
 * mrtc_olm_canonical_json_for_signing:
 * @object: a JSON object
 * @error: return location for an error
 *
 * Canonical JSON of @object without its top-level `signatures` and
 * `unsigned` members: the text that Matrix signatures cover.
 *
 * Returns: (transfer full) (nullable): the text, or %NULL with @error set.
 */
gchar *
mrtc_olm_canonical_json_for_signing (JsonObject *object, GError **error)
{
  GString *out = g_string_new (NULL);
  JsonNode *node = json_node_alloc ();

  json_node_init_object (node, object);
  if (!canonical_append (out, node, "signatures", "unsigned", 0, error)) {
    json_node_unref (node);
    g_string_free (out, TRUE);
    return NULL;
  }
  json_node_unref (node);
  return g_string_free (out, FALSE);
}

gchar *
mrtc_olm_json_object_to_string (JsonObject *object)
{
  JsonNode *node = json_node_alloc ();
  gchar *text;

  json_node_init_object (node, object);
  text = json_to_string (node, FALSE);
  json_node_unref (node);
  return text;
}

G_STATIC_ASSERT (MRTC_OLM_JSON_MAX_DEPTH == MRTC_JSON_MAX_DEPTH_PAYLOAD);
G_STATIC_ASSERT (MRTC_OLM_JSON_MAX_DEPTH_ANY == MRTC_JSON_MAX_DEPTH_ANY);

/* The pre-scan and the parse live in ext/json (shared with the Matrix
 * client); these keep the Olm names and error domain. */
static gboolean
to_olm_error (GError **error, GError *local)
{
  if (local != NULL) {
    g_set_error_literal (
        error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID, local->message);
    g_error_free (local);
  }
  return FALSE;
}

/**
 * mrtc_olm_json_check_text:
 * @text: JSON text (need not be NUL-terminated if @len is given)
 * @len: length of @text or -1
 * @max_depth: the deepest nesting of arrays and objects accepted
 * @error: return location for an error
 *
 * mrtc_json_check_text() with errors in %MRTC_OLM_ERROR.
 *
 * Returns: %TRUE if @text may be given to json-glib.
 */
gboolean
mrtc_olm_json_check_text (
    const gchar *text, gssize len, guint max_depth, GError **error)
{
  GError *local = NULL;

  if (mrtc_json_check_text (text, len, max_depth, &local))
    return TRUE;
  return to_olm_error (error, local);
}

static JsonObject *
object_from_string (
    const gchar *text, gssize len, guint max_depth, GError **error)
{
  GError *local = NULL;
  JsonObject *object
      = mrtc_json_object_from_string (text, len, 0, max_depth, &local);

  if (object == NULL)
    to_olm_error (error, local);
  return object;
}

/**
 * mrtc_olm_json_object_from_string:
 * @text: JSON text (need not be NUL-terminated if @len is given)
 * @len: length of @text or -1
 * @error: return location for an error
 *
 * Parses JSON after mrtc_olm_json_check_text() with
 * %MRTC_OLM_JSON_MAX_DEPTH_ANY: nesting that would exhaust the stack, NUL
 * characters and non-standard syntax are refused with
 * %MRTC_OLM_ERROR_INVALID. Decrypted payloads go through the stricter
 * mrtc_olm_json_payload_from_string().
 *
 * Returns: (transfer full) (nullable): the object, or %NULL when @text is
 *   not a JSON object.
 */
JsonObject *
mrtc_olm_json_object_from_string (const gchar *text, gssize len, GError **error)
{
  return object_from_string (text, len, MRTC_OLM_JSON_MAX_DEPTH_ANY, error);
}

/**
 * mrtc_olm_json_payload_from_string:
 * @text: a decrypted Olm or Megolm payload (need not be NUL-terminated)
 * @len: its length
 * @error: return location for an error
 *
 * As mrtc_olm_json_object_from_string() for what a peer encrypted: at most
 * %MRTC_OLM_MAX_PAYLOAD_LEN bytes nested at most %MRTC_OLM_JSON_MAX_DEPTH
 * levels (%MRTC_OLM_ERROR_INVALID otherwise).
 *
 * Returns: (transfer full) (nullable): the object.
 */
JsonObject *
mrtc_olm_json_payload_from_string (const gchar *text, gsize len, GError **error)
{
  if (len > MRTC_OLM_MAX_PAYLOAD_LEN) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "payload of %" G_GSIZE_FORMAT " bytes is too large (limit %d)", len,
        MRTC_OLM_MAX_PAYLOAD_LEN);
    return NULL;
  }
  return object_from_string (text, (gssize)len, MRTC_OLM_JSON_MAX_DEPTH, error);
}

/**
 * mrtc_olm_json_get_string:
 * @object: (nullable): an object
 * @member: member name
 *
 * Returns: (transfer none) (nullable): the member if it is a string.
 */
const gchar *
mrtc_olm_json_get_string (JsonObject *object, const gchar *member)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, member);
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

/**
 * mrtc_olm_json_node_get_safe_int:
 * @node: (nullable): a JSON value
 * @out: (out): the integer
 *
 * Reads an integer that JavaScript could have written: a JSON integer, or
 * a number with no fractional part, within ±(2^53 - 1). Out-of-range and
 * non-finite numbers are refused rather than cast (which is undefined
 * behaviour in C).
 *
 * Returns: %TRUE if @node holds such an integer.
 */
gboolean
mrtc_olm_json_node_get_safe_int (JsonNode *node, gint64 *out)
{
  GType type;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  type = json_node_get_value_type (node);
  if (type == G_TYPE_INT64) {
    gint64 v = json_node_get_int (node);

    if (v > MRTC_OLM_JSON_MAX_SAFE_INT || v < -MRTC_OLM_JSON_MAX_SAFE_INT)
      return FALSE;
    *out = v;
    return TRUE;
  }
  if (type == G_TYPE_DOUBLE) {
    gdouble v = json_node_get_double (node);

    if (!isfinite (v) || fabs (v) > (gdouble)MRTC_OLM_JSON_MAX_SAFE_INT
        || v != floor (v))
      return FALSE;
    *out = (gint64)v;
    return TRUE;
  }
  return FALSE;
}

/**
 * mrtc_olm_json_get_object:
 * @object: (nullable): an object
 * @member: member name
 *
 * Returns: (transfer none) (nullable): the member if it is an object.
 */
JsonObject *
mrtc_olm_json_get_object (JsonObject *object, const gchar *member)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, member);
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  return json_node_get_object (node);
}

/**
 * mrtc_olm_verify_signature:
 * @object: signed JSON object (with a `signatures` member)
 * @user_id: the signer
 * @key_id: the signing key id, e.g. `ed25519:DEVICEID`
 * @ed25519: the signer's Ed25519 public key (unpadded base64)
 * @error: return location for an error
 *
 * Checks the signature `signatures.<user_id>.<key_id>` over the canonical
 * JSON of @object.
 *
 * Returns: %TRUE if the signature is present and valid.
 */
gboolean
mrtc_olm_verify_signature (JsonObject *object, const gchar *user_id,
    const gchar *key_id, const gchar *ed25519, GError **error)
{
  JsonObject *sigs = mrtc_olm_json_get_object (
      mrtc_olm_json_get_object (object, "signatures"), user_id);
  const gchar *signature = mrtc_olm_json_get_string (sigs, key_id);
  g_autofree gchar *canonical = NULL;
  g_autofree gchar *sig_copy = NULL;
  g_autofree guint8 *utility_mem = NULL;
  OlmUtility *utility;
  size_t res;

  if (signature == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_SIGNATURE,
        "no signature by %s %s", user_id, key_id);
    return FALSE;
  }
  canonical = mrtc_olm_canonical_json_for_signing (object, error);
  if (canonical == NULL)
    return FALSE;

  utility_mem = g_malloc (olm_utility_size ());
  utility = olm_utility (utility_mem);
  /* libolm decodes the signature in place. */
  sig_copy = g_strdup (signature);
  res = olm_ed25519_verify (utility, ed25519, strlen (ed25519), canonical,
      strlen (canonical), sig_copy, strlen (sig_copy));
  olm_clear_utility (utility);
  if (res == olm_error ()) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_SIGNATURE,
        "signature by %s %s does not verify", user_id, key_id);
    return FALSE;
  }
  return TRUE;
}

static gboolean
array_has_string (JsonObject *object, const gchar *member, const gchar *wanted)
{
  JsonNode *node = json_object_get_member (object, member);
  JsonArray *array;
  guint i;

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    return FALSE;
  array = json_node_get_array (node);
  for (i = 0; i < json_array_get_length (array); i++) {
    JsonNode *e = json_array_get_element (array, i);

    if (JSON_NODE_HOLDS_VALUE (e)
        && json_node_get_value_type (e) == G_TYPE_STRING
        && g_strcmp0 (json_node_get_string (e), wanted) == 0)
      return TRUE;
  }
  return FALSE;
}

static gboolean
is_curve25519_key (const gchar *key)
{
  gsize len = 0;
  g_autofree guint8 *raw = mrtc_olm_base64_decode_strict (key, FALSE, &len);

  return raw != NULL && len == 32;
}

/**
 * mrtc_olm_verify_device_keys:
 * @device_keys: a device's `device_keys` object (from /keys/query or an
 *   Olm payload's `sender_device_keys`)
 * @expected_user_id: the user it must belong to
 * @expected_device_id: (nullable): the device id it must carry, or %NULL to
 *   take it from @device_keys
 * @error: return location for an error
 *
 * Checks the fields a device's keys must have (user and device ids, Olm
 * support, 32-byte Curve25519 and Ed25519 keys) and the device's signature
 * of them with its own Ed25519 key.
 *
 * Returns: (transfer full) (nullable): the verified device.
 */
MrtcOlmDevice *
mrtc_olm_verify_device_keys (JsonObject *device_keys,
    const gchar *expected_user_id, const gchar *expected_device_id,
    GError **error)
{
  const gchar *user_id = mrtc_olm_json_get_string (device_keys, "user_id");
  const gchar *device_id = mrtc_olm_json_get_string (device_keys, "device_id");
  JsonObject *keys = mrtc_olm_json_get_object (device_keys, "keys");
  g_autofree gchar *curve_id = NULL;
  g_autofree gchar *ed_id = NULL;
  const gchar *curve, *ed;

  if (user_id == NULL || device_id == NULL || keys == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "device keys lack user_id, device_id or keys");
    return NULL;
  }
  if (g_strcmp0 (user_id, expected_user_id) != 0
      || (expected_device_id != NULL
          && g_strcmp0 (device_id, expected_device_id) != 0)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
        "device keys of %s %s listed as %s %s", user_id, device_id,
        expected_user_id, expected_device_id ? expected_device_id : "");
    return NULL;
  }
  if (!array_has_string (device_keys, "algorithms", MRTC_OLM_ALGORITHM_OLM)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "device %s %s does not support Olm", user_id, device_id);
    return NULL;
  }
  curve_id = g_strconcat ("curve25519:", device_id, NULL);
  ed_id = g_strconcat ("ed25519:", device_id, NULL);
  curve = mrtc_olm_json_get_string (keys, curve_id);
  ed = mrtc_olm_json_get_string (keys, ed_id);
  if (curve == NULL || ed == NULL || !is_curve25519_key (curve)
      || !is_curve25519_key (ed)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "device %s %s lacks valid curve25519/ed25519 keys", user_id, device_id);
    return NULL;
  }
  if (!mrtc_olm_verify_signature (device_keys, user_id, ed_id, ed, error))
    return NULL;
  return mrtc_olm_device_new (user_id, device_id, curve, ed);
}
