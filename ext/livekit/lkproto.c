/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "lkproto.h"

#include <string.h>

G_DEFINE_QUARK (lk - error - quark, lk_error);

GBytes *
lk_proto_pack_request (const Lkproto__SignalRequest *request)
{
  gsize size = lkproto__signal_request__get_packed_size (request);
  guint8 *data = g_malloc (size > 0 ? size : 1);

  lkproto__signal_request__pack (request, data);
  return g_bytes_new_take (data, size);
}

Lkproto__SignalResponse *
lk_proto_unpack_response (const guint8 *data, gsize size, GError **error)
{
  Lkproto__SignalResponse *response;

  response = lkproto__signal_response__unpack (NULL, size, data);
  if (response == NULL) {
    g_set_error (error, LK_ERROR, LK_ERROR_PROTOCOL,
        "malformed SignalResponse (%" G_GSIZE_FORMAT " bytes)", size);
    return NULL;
  }
  return response;
}

void
lk_proto_response_free (Lkproto__SignalResponse *response)
{
  if (response != NULL)
    lkproto__signal_response__free_unpacked (response, NULL);
}

const gchar *
lk_proto_response_name (const Lkproto__SignalResponse *response)
{
  switch (response->message_case) {
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_JOIN:
      return "join";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_ANSWER:
      return "answer";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_OFFER:
      return "offer";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_TRICKLE:
      return "trickle";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_UPDATE:
      return "update";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_TRACK_PUBLISHED:
      return "track_published";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_LEAVE:
      return "leave";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_MUTE:
      return "mute";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_REFRESH_TOKEN:
      return "refresh_token";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_TRACK_UNPUBLISHED:
      return "track_unpublished";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_PONG:
      return "pong";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_PONG_RESP:
      return "pong_resp";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_REQUEST_RESPONSE:
      return "request_response";
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE__NOT_SET:
    default:
      return "unhandled";
  }
}

const gchar *
lk_proto_entries_lookup (
    Lkproto__StringEntry **entries, gsize n_entries, const gchar *key)
{
  gsize i;

  for (i = 0; i < n_entries; i++) {
    if (entries[i] != NULL && g_strcmp0 (entries[i]->key, key) == 0)
      return entries[i]->value;
  }
  return NULL;
}

static const gchar *const source_names[] = { "unknown", "camera", "microphone",
  "screen_share", "screen_share_audio" };

const gchar *
lk_proto_source_to_string (Lkproto__TrackSource source)
{
  if ((guint)source < G_N_ELEMENTS (source_names))
    return source_names[source];
  return "unknown";
}

Lkproto__TrackSource
lk_proto_source_from_string (const gchar *name)
{
  guint i;

  for (i = 0; name != NULL && i < G_N_ELEMENTS (source_names); i++) {
    if (g_ascii_strcasecmp (name, source_names[i]) == 0)
      return (Lkproto__TrackSource)i;
  }
  return LKPROTO__TRACK_SOURCE__UNKNOWN;
}
