/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_JSON_H__
#define __MRTC_JSON_H__

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Deepest nesting of arrays and objects accepted in anything a peer or a
 * server sends (a whole /sync response included): above what a homeserver
 * passes on (Synapse's JSON decoder stops near 1000 levels), far below what
 * exhausts a thread's stack in json-glib's recursive parser. */
#define MRTC_JSON_MAX_DEPTH_ANY 2048
/* Deepest nesting for small payloads (decrypted to-device and room
 * payloads). */
#define MRTC_JSON_MAX_DEPTH_PAYLOAD 64

#define MRTC_JSON_ERROR (mrtc_json_error_quark ())
GQuark mrtc_json_error_quark (void);

/**
 * MrtcJsonError:
 * @MRTC_JSON_ERROR_INVALID: not strict JSON, nested too deeply, NUL
 *   characters, or not of the expected type
 * @MRTC_JSON_ERROR_TOO_LARGE: longer than the caller's limit
 */
typedef enum
{
  MRTC_JSON_ERROR_INVALID,
  MRTC_JSON_ERROR_TOO_LARGE,
} MrtcJsonError;

gboolean mrtc_json_check_text (
    const gchar *text, gssize len, guint max_depth, GError **error);

JsonNode *mrtc_json_parse (const gchar *text, gssize len, gsize max_len,
    guint max_depth, GError **error);

JsonObject *mrtc_json_object_from_string (const gchar *text, gssize len,
    gsize max_len, guint max_depth, GError **error);

G_END_DECLS

#endif /* __MRTC_JSON_H__ */
