/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */
#ifndef __LK_TOKEN_H__
#define __LK_TOKEN_H__

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

/* Where a LiveKit access token comes from:
 * - a token service (lk-jwt-service): POST <service>/get_token (MSC4195),
 *   falling back to the legacy POST <service>/sfu/get;
 * - an API key and secret: the JWT is minted locally (HS256, GHmac);
 * - a ready JWT. */

typedef struct
{
  gchar *access_token;
  gchar *token_type; /* "Bearer" */
  gchar *matrix_server_name;
  gint64 expires_in;
} LkOpenIdToken;

typedef struct
{
  gchar *room_id; /* "!room:server" */
  gchar *slot_id; /* "m.call#ROOM" */
  LkOpenIdToken openid;
  gchar *member_id; /* the MatrixRTC member id */
  gchar *user_id;   /* claimed user id */
  gchar *device_id; /* claimed device id */
} LkTokenRequest;

typedef struct
{
  gboolean can_publish;
  gboolean can_subscribe;
  gboolean can_publish_data;
  gboolean room_create; /* lets the join create the room */
} LkGrants;

/* Mints an HS256 JWT with a "video" grant for @room (@grants NULL: all,
 * including roomCreate, since whoever holds the secret may create rooms). @now_unix is the
 * current time (seconds since the epoch), @ttl_seconds the validity. */
gchar *lk_token_mint (const gchar *api_key, const gchar *api_secret,
    const gchar *identity, const gchar *name, const gchar *room,
    const LkGrants *grants, gint64 now_unix, guint ttl_seconds, GError **error);

/* The payload (claims) of @jwt, without checking its signature; NULL and
 * @error when it is not a JWT. */
JsonObject *lk_token_peek_claims (const gchar *jwt, GError **error);

/* Checks the HS256 signature of @jwt with @api_secret. */
gboolean lk_token_verify (const gchar *jwt, const gchar *api_secret);

/* Request bodies of the token service (compact JSON). */
gchar *lk_token_get_token_body (const LkTokenRequest *request);
gchar *lk_token_sfu_get_body (const LkTokenRequest *request);

/* Parses a token service reply: on HTTP 200 the url and jwt; otherwise an
 * LK_ERROR_HTTP error naming the HTTP status and the Matrix errcode. */
gboolean lk_token_parse_reply (guint status, const gchar *body, gsize size,
    gchar **url, gchar **jwt, GError **error);

/* POSTs @request to <@service_url>/get_token, falling back to /sfu/get when
 * the service does not know the route (404, 405). */
void lk_token_request_async (SoupSession *session, const gchar *service_url,
    const LkTokenRequest *request, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data);
gboolean lk_token_request_finish (
    GAsyncResult *result, gchar **url, gchar **jwt, GError **error);

void lk_token_request_clear (LkTokenRequest *request);

/* TRUE for https:// and wss:// URLs and for http:// or ws:// ones on a
 * loopback host (localhost, 127.0.0.0/8, ::1): where a token or OpenID
 * token may go without crossing the network in clear.
 * lk_token_request_async() logs a message for other http:// services. */
gboolean lk_token_url_is_private (const gchar *url);

G_END_DECLS

#endif /* __LK_TOKEN_H__ */
