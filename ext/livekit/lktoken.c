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

#include "lktoken.h"
#include "lkproto.h"

#include <openssl/crypto.h>
#include <string.h>

static gchar *
base64url_encode (const guint8 *data, gsize size)
{
  gchar *out = g_base64_encode (data, size);
  gchar *p;
  gsize len;

  for (p = out; *p != '\0'; p++) {
    if (*p == '+')
      *p = '-';
    else if (*p == '/')
      *p = '_';
  }
  len = strlen (out);
  while (len > 0 && out[len - 1] == '=')
    out[--len] = '\0';
  return out;
}

static guint8 *
base64url_decode (const gchar *text, gsize text_len, gsize *out_len)
{
  GString *s = g_string_new_len (text, text_len);
  gsize i;

  for (i = 0; i < s->len; i++) {
    if (s->str[i] == '-')
      s->str[i] = '+';
    else if (s->str[i] == '_')
      s->str[i] = '/';
    else if (!g_ascii_isalnum (s->str[i]) && s->str[i] != '+'
             && s->str[i] != '/') {
      g_string_free (s, TRUE);
      return NULL;
    }
  }
  while (s->len % 4 != 0)
    g_string_append_c (s, '=');
  {
    guint8 *out = g_base64_decode (s->str, out_len);
    g_string_free (s, TRUE);
    return out;
  }
}

static gchar *
json_to_compact (JsonNode *node)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();

  json_generator_set_root (gen, node);
  return json_generator_to_data (gen, NULL);
}

static gchar *
hs256_signature (const gchar *api_secret, const gchar *signing_input)
{
  g_autoptr (GHmac) hmac = g_hmac_new (
      G_CHECKSUM_SHA256, (const guchar *)api_secret, strlen (api_secret));
  guint8 digest[32];
  gsize digest_len = sizeof (digest);

  g_hmac_update (hmac, (const guchar *)signing_input, -1);
  g_hmac_get_digest (hmac, digest, &digest_len);
  return base64url_encode (digest, digest_len);
}

gchar *
lk_token_mint (const gchar *api_key, const gchar *api_secret,
    const gchar *identity, const gchar *name, const gchar *room,
    const LkGrants *grants, gint64 now_unix, guint ttl_seconds, GError **error)
{
  static const gchar header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree gchar *payload = NULL;
  g_autofree gchar *h64 = NULL;
  g_autofree gchar *p64 = NULL;
  g_autofree gchar *signing_input = NULL;
  g_autofree gchar *sig = NULL;
  LkGrants all = { TRUE, TRUE, TRUE, TRUE };

  if (api_key == NULL || *api_key == '\0' || api_secret == NULL
      || *api_secret == '\0' || identity == NULL || *identity == '\0'
      || room == NULL || *room == '\0') {
    g_set_error (error, LK_ERROR, LK_ERROR_TOKEN,
        "minting a LiveKit token needs an API key, a secret, an identity "
        "and a room");
    return NULL;
  }
  if (grants == NULL)
    grants = &all;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "iss");
  json_builder_add_string_value (b, api_key);
  json_builder_set_member_name (b, "sub");
  json_builder_add_string_value (b, identity);
  if (name != NULL) {
    json_builder_set_member_name (b, "name");
    json_builder_add_string_value (b, name);
  }
  json_builder_set_member_name (b, "nbf");
  json_builder_add_int_value (b, now_unix - 10);
  json_builder_set_member_name (b, "exp");
  json_builder_add_int_value (b, now_unix + ttl_seconds);
  json_builder_set_member_name (b, "video");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "room");
  json_builder_add_string_value (b, room);
  json_builder_set_member_name (b, "roomJoin");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_set_member_name (b, "canPublish");
  json_builder_add_boolean_value (b, grants->can_publish);
  json_builder_set_member_name (b, "canSubscribe");
  json_builder_add_boolean_value (b, grants->can_subscribe);
  json_builder_set_member_name (b, "canPublishData");
  json_builder_add_boolean_value (b, grants->can_publish_data);
  if (grants->room_create) {
    json_builder_set_member_name (b, "roomCreate");
    json_builder_add_boolean_value (b, TRUE);
  }
  json_builder_set_member_name (b, "canUpdateOwnMetadata");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  payload = json_to_compact (root);

  h64 = base64url_encode ((const guint8 *)header, strlen (header));
  p64 = base64url_encode ((const guint8 *)payload, strlen (payload));
  signing_input = g_strconcat (h64, ".", p64, NULL);
  sig = hs256_signature (api_secret, signing_input);
  return g_strconcat (signing_input, ".", sig, NULL);
}

JsonObject *
lk_token_peek_claims (const gchar *jwt, GError **error)
{
  const gchar *dot1, *dot2;
  g_autofree guint8 *payload = NULL;
  gsize payload_len = 0;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;

  dot1 = jwt ? strchr (jwt, '.') : NULL;
  dot2 = dot1 ? strchr (dot1 + 1, '.') : NULL;
  if (dot2 == NULL || strchr (dot2 + 1, '.') != NULL)
    goto bad;
  payload = base64url_decode (dot1 + 1, dot2 - dot1 - 1, &payload_len);
  if (payload == NULL || payload_len == 0)
    goto bad;
  if (!json_parser_load_from_data (
          parser, (const gchar *)payload, payload_len, NULL))
    goto bad;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    goto bad;
  return json_object_ref (json_node_get_object (root));

bad:
  g_set_error (error, LK_ERROR, LK_ERROR_TOKEN, "not a JWT");
  return NULL;
}

gboolean
lk_token_verify (const gchar *jwt, const gchar *api_secret)
{
  const gchar *dot2;
  g_autofree gchar *signing_input = NULL;
  g_autofree gchar *sig = NULL;

  if (jwt == NULL || api_secret == NULL)
    return FALSE;
  dot2 = strrchr (jwt, '.');
  if (dot2 == NULL || dot2 == jwt)
    return FALSE;
  signing_input = g_strndup (jwt, dot2 - jwt);
  sig = hs256_signature (api_secret, signing_input);
  /* constant time: the comparison must not tell how much of a forged
   * signature is right */
  return strlen (sig) == strlen (dot2 + 1)
         && CRYPTO_memcmp (sig, dot2 + 1, strlen (sig)) == 0;
}

static void
add_openid (JsonBuilder *b, const LkOpenIdToken *openid)
{
  json_builder_set_member_name (b, "openid_token");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "access_token");
  json_builder_add_string_value (
      b, openid->access_token ? openid->access_token : "");
  json_builder_set_member_name (b, "token_type");
  json_builder_add_string_value (
      b, openid->token_type ? openid->token_type : "Bearer");
  json_builder_set_member_name (b, "matrix_server_name");
  json_builder_add_string_value (
      b, openid->matrix_server_name ? openid->matrix_server_name : "");
  json_builder_set_member_name (b, "expires_in");
  json_builder_add_int_value (b, openid->expires_in);
  json_builder_end_object (b);
}

gchar *
lk_token_get_token_body (const LkTokenRequest *request)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "room_id");
  json_builder_add_string_value (b, request->room_id ? request->room_id : "");
  json_builder_set_member_name (b, "slot_id");
  json_builder_add_string_value (
      b, request->slot_id ? request->slot_id : "m.call#ROOM");
  add_openid (b, &request->openid);
  json_builder_set_member_name (b, "member");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "id");
  json_builder_add_string_value (
      b, request->member_id ? request->member_id : "");
  json_builder_set_member_name (b, "claimed_user_id");
  json_builder_add_string_value (b, request->user_id ? request->user_id : "");
  json_builder_set_member_name (b, "claimed_device_id");
  json_builder_add_string_value (
      b, request->device_id ? request->device_id : "");
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  return json_to_compact (root);
}

gchar *
lk_token_sfu_get_body (const LkTokenRequest *request)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "room");
  json_builder_add_string_value (b, request->room_id ? request->room_id : "");
  add_openid (b, &request->openid);
  json_builder_set_member_name (b, "device_id");
  json_builder_add_string_value (
      b, request->device_id ? request->device_id : "");
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  return json_to_compact (root);
}

gboolean
lk_token_parse_reply (guint status, const gchar *body, gsize size, gchar **url,
    gchar **jwt, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *obj = NULL;
  JsonNode *root;

  if (body != NULL && size > 0
      && json_parser_load_from_data (parser, body, size, NULL)) {
    root = json_parser_get_root (parser);
    if (root != NULL && JSON_NODE_HOLDS_OBJECT (root))
      obj = json_node_get_object (root);
  }

  if (status != 200) {
    const gchar *errcode = NULL, *message = NULL;

    if (obj != NULL) {
      errcode
          = json_object_get_string_member_with_default (obj, "errcode", NULL);
      message = json_object_get_string_member_with_default (obj, "error", NULL);
    }
    g_set_error (error, LK_ERROR, LK_ERROR_HTTP,
        "token service: HTTP %u %s%s%s", status,
        errcode ? errcode : "(no errcode)", message ? ": " : "",
        message ? message : "");
    return FALSE;
  }
  if (obj == NULL) {
    g_set_error (error, LK_ERROR, LK_ERROR_TOKEN,
        "token service: reply is not a JSON object");
    return FALSE;
  }
  {
    const gchar *u
        = json_object_get_string_member_with_default (obj, "url", NULL);
    const gchar *j
        = json_object_get_string_member_with_default (obj, "jwt", NULL);

    if (u == NULL || *u == '\0' || j == NULL || *j == '\0') {
      g_set_error (error, LK_ERROR, LK_ERROR_TOKEN,
          "token service: reply lacks url or jwt");
      return FALSE;
    }
    if (url)
      *url = g_strdup (u);
    if (jwt)
      *jwt = g_strdup (j);
  }
  return TRUE;
}

typedef struct
{
  SoupSession *session;
  gchar *service_url;
  gchar *legacy_body;
  gboolean legacy;
} TokenTask;

static void
token_task_free (TokenTask *t)
{
  g_object_unref (t->session);
  g_free (t->service_url);
  g_free (t->legacy_body);
  g_free (t);
}

static void token_post (GTask *task, const gchar *path, const gchar *body);

static void
token_reply_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
  GTask *task = G_TASK (user_data);
  TokenTask *t = g_task_get_task_data (task);
  SoupMessage *msg = soup_session_get_async_result_message (t->session, res);
  g_autoptr (GBytes) body = NULL;
  GError *error = NULL;
  guint status;
  gchar *url = NULL, *jwt = NULL;

  body = soup_session_send_and_read_finish (t->session, res, &error);
  if (body == NULL) {
    g_task_return_error (task, error);
    g_object_unref (task);
    return;
  }
  status = soup_message_get_status (msg);
  if (!t->legacy && (status == 404 || status == 405)) {
    t->legacy = TRUE;
    token_post (task, "/sfu/get", t->legacy_body);
    return;
  }
  if (!lk_token_parse_reply (status, g_bytes_get_data (body, NULL),
          g_bytes_get_size (body), &url, &jwt, &error)) {
    g_task_return_error (task, error);
  } else {
    gchar **pair = g_new0 (gchar *, 3);

    pair[0] = url;
    pair[1] = jwt;
    g_task_return_pointer (task, pair, (GDestroyNotify)g_strfreev);
  }
  g_object_unref (task);
}

static void
token_post (GTask *task, const gchar *path, const gchar *body)
{
  TokenTask *t = g_task_get_task_data (task);
  g_autofree gchar *uri = NULL;
  g_autoptr (SoupMessage) msg = NULL;
  g_autoptr (GBytes) bytes = g_bytes_new (body, strlen (body));
  gsize len = strlen (t->service_url);

  while (len > 0 && t->service_url[len - 1] == '/')
    len--;
  uri = g_strdup_printf ("%.*s%s", (int)len, t->service_url, path);
  msg = soup_message_new ("POST", uri);
  if (msg == NULL) {
    g_task_return_new_error (task, LK_ERROR, LK_ERROR_TOKEN,
        "token service URL is not valid: %s", t->service_url);
    g_object_unref (task);
    return;
  }
  soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
  soup_session_send_and_read_async (t->session, msg, G_PRIORITY_DEFAULT,
      g_task_get_cancellable (task), token_reply_cb, task);
}

/* Whether sending a credential to @url keeps it off the network: https,
 * or plain http to a loopback host. */
gboolean
lk_token_url_is_private (const gchar *url)
{
  g_autoptr (GUri) uri = url ? g_uri_parse (url, G_URI_FLAGS_NONE, NULL) : NULL;
  const gchar *scheme, *host;
  g_autoptr (GInetAddress) addr = NULL;

  if (uri == NULL)
    return FALSE;
  scheme = g_uri_get_scheme (uri);
  if (g_ascii_strcasecmp (scheme, "https") == 0
      || g_ascii_strcasecmp (scheme, "wss") == 0)
    return TRUE;
  host = g_uri_get_host (uri);
  if (host == NULL)
    return FALSE;
  if (g_ascii_strcasecmp (host, "localhost") == 0)
    return TRUE;
  addr = g_inet_address_new_from_string (host);
  return addr != NULL && g_inet_address_get_is_loopback (addr);
}

void
lk_token_request_async (SoupSession *session, const gchar *service_url,
    const LkTokenRequest *request, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  TokenTask *t = g_new0 (TokenTask, 1);
  g_autofree gchar *body = lk_token_get_token_body (request);

  t->session = g_object_ref (session);
  t->service_url = g_strdup (service_url);
  if (!lk_token_url_is_private (service_url))
    g_message ("LiveKit token service %s is plain http: the OpenID token "
               "crosses the network in clear",
        service_url);
  t->legacy_body = lk_token_sfu_get_body (request);
  g_task_set_task_data (task, t, (GDestroyNotify)token_task_free);
  token_post (task, "/get_token", body);
}

gboolean
lk_token_request_finish (
    GAsyncResult *result, gchar **url, gchar **jwt, GError **error)
{
  gchar **pair = g_task_propagate_pointer (G_TASK (result), error);

  if (pair == NULL)
    return FALSE;
  if (url)
    *url = g_strdup (pair[0]);
  if (jwt)
    *jwt = g_strdup (pair[1]);
  g_strfreev (pair);
  return TRUE;
}

void
lk_token_request_clear (LkTokenRequest *request)
{
  g_clear_pointer (&request->room_id, g_free);
  g_clear_pointer (&request->slot_id, g_free);
  g_clear_pointer (&request->openid.access_token, g_free);
  g_clear_pointer (&request->openid.token_type, g_free);
  g_clear_pointer (&request->openid.matrix_server_name, g_free);
  g_clear_pointer (&request->member_id, g_free);
  g_clear_pointer (&request->user_id, g_free);
  g_clear_pointer (&request->device_id, g_free);
}
