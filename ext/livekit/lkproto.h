/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __LK_PROTO_H__
#define __LK_PROTO_H__

#include <glib.h>
#include "lkproto.pb-c.h"

G_BEGIN_DECLS

/* Thin helpers over the protobuf-c code generated from lkproto.proto: the
 * LiveKit signalling messages (one SignalRequest or SignalResponse per
 * binary WebSocket message, no length prefix). */

#define LK_ERROR (lk_error_quark ())
GQuark lk_error_quark (void);

typedef enum
{
  LK_ERROR_PROTOCOL,         /* malformed or unexpected signalling */
  LK_ERROR_HTTP,             /* token service or upgrade failed */
  LK_ERROR_TOKEN,            /* no usable token */
  LK_ERROR_SDP,              /* malformed SDP */
  LK_ERROR_DTLS_FINGERPRINT, /* remote certificate != SDP fingerprint */
  LK_ERROR_TIMEOUT,          /* no answer in time */
  LK_ERROR_CLOSED            /* connection closed */
} LkErrorCode;

/* Serialises @request; never fails for a well-formed message. */
GBytes *lk_proto_pack_request (const Lkproto__SignalRequest *request);

/* Parses one server message; NULL and @error on malformed input. Free with
 * lk_proto_response_free(). */
Lkproto__SignalResponse *lk_proto_unpack_response (
    const guint8 *data, gsize size, GError **error);
void lk_proto_response_free (Lkproto__SignalResponse *response);

/* The oneof member's name, for logs ("join", "offer", ...). */
const gchar *lk_proto_response_name (const Lkproto__SignalResponse *response);

/* Value of @key in a map field (repeated StringEntry), or NULL. */
const gchar *lk_proto_entries_lookup (
    Lkproto__StringEntry **entries, gsize n_entries, const gchar *key);

/* "camera", "microphone", "screen_share", "screen_share_audio", "unknown" */
const gchar *lk_proto_source_to_string (Lkproto__TrackSource source);
Lkproto__TrackSource lk_proto_source_from_string (const gchar *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Lkproto__SignalResponse, lk_proto_response_free)

G_END_DECLS

#endif /* __LK_PROTO_H__ */
