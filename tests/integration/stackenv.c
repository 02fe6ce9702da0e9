/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#include "stackenv.h"

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <string.h>

static GHashTable *stack_values;

static gchar *
stack_env_path (void)
{
  const gchar *path = g_getenv ("MATRIXRTC_STACK_ENV");

  if (path != NULL && *path != '\0')
    return g_strdup (path);
  return g_build_filename (
      g_get_user_cache_dir (), "gst-matrixrtc", "stack", "env", NULL);
}

gboolean
stack_env_load (GError **error)
{
  g_autofree gchar *path = stack_env_path ();
  g_autofree gchar *contents = NULL;
  g_auto (GStrv) lines = NULL;
  guint i;

  if (stack_values != NULL)
    return TRUE;

  if (!g_file_get_contents (path, &contents, NULL, error)) {
    g_prefix_error (error, "the local stack is not up (run tests/env/up): ");
    return FALSE;
  }

  stack_values
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  lines = g_strsplit (contents, "\n", -1);
  for (i = 0; lines[i] != NULL; i++) {
    const gchar *line = lines[i];
    const gchar *eq;

    if (*line == '\0' || *line == '#')
      continue;
    if (g_str_has_prefix (line, "export "))
      line += strlen ("export ");
    eq = strchr (line, '=');
    if (eq == NULL)
      continue;
    g_hash_table_insert (stack_values, g_strndup (line, eq - line),
        g_shell_unquote (eq + 1, NULL));
  }
  return TRUE;
}

const gchar *
stack_env_lookup (const gchar *key)
{
  GError *error = NULL;

  if (!stack_env_load (&error)) {
    g_clear_error (&error);
    return NULL;
  }
  return g_hash_table_lookup (stack_values, key);
}

const gchar *
stack_env_get (const gchar *key)
{
  GError *error = NULL;
  const gchar *value;

  if (!stack_env_load (&error))
    g_error ("%s", error->message);
  value = g_hash_table_lookup (stack_values, key);
  if (value == NULL)
    g_error ("the stack env file has no %s: rerun tests/env/up", key);
  return value;
}

/* Sends @method to @url with the JSON @body (or none) and returns the reply's
 * JSON object, or NULL with @error set. */
static JsonObject *
admin_call (SoupSession *session, const gchar *method, const gchar *url,
    const gchar *body, GError **error)
{
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;

  if (body != NULL) {
    g_autoptr (GBytes) bytes = g_bytes_new (body, strlen (body));
    soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
  }
  reply = soup_session_send_and_read (session, msg, NULL, error);
  if (reply == NULL)
    return NULL;
  if (soup_message_get_status (msg) != SOUP_STATUS_OK
      || !json_parser_load_from_data (parser, g_bytes_get_data (reply, NULL),
          g_bytes_get_size (reply), NULL)
      || (root = json_parser_get_root (parser)) == NULL
      || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s %s: HTTP %u", method,
        url, soup_message_get_status (msg));
    return NULL;
  }
  return json_object_ref (json_node_get_object (root));
}

gchar *
stack_env_register_user (
    const gchar *localpart, const gchar *password, GError **error)
{
  const gchar *secret = stack_env_get ("MATRIXRTC_REGISTRATION_SECRET");
  g_autofree gchar *url = g_strconcat (
      stack_env_get ("MATRIXRTC_HS_URL"), "/_synapse/admin/v1/register", NULL);
  g_autoptr (SoupSession) session
      = soup_session_new_with_options ("timeout", 30, NULL);
  g_autoptr (JsonObject) nonce_reply = NULL;
  g_autoptr (JsonObject) reply = NULL;
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) body_node = NULL;
  g_autoptr (GHmac) hmac = NULL;
  g_autofree gchar *body = NULL;
  const gchar *nonce;

  nonce_reply = admin_call (session, "GET", url, NULL, error);
  if (nonce_reply == NULL)
    return NULL;
  nonce = json_object_get_string_member_with_default (nonce_reply, "nonce", "");

  /* mac = HMAC-SHA1(secret, nonce \0 user \0 password \0 "notadmin") */
  hmac = g_hmac_new (G_CHECKSUM_SHA1, (const guchar *)secret, strlen (secret));
  g_hmac_update (hmac, (const guchar *)nonce, strlen (nonce) + 1);
  g_hmac_update (hmac, (const guchar *)localpart, strlen (localpart) + 1);
  g_hmac_update (hmac, (const guchar *)password, strlen (password) + 1);
  g_hmac_update (hmac, (const guchar *)"notadmin", 8);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "nonce");
  json_builder_add_string_value (builder, nonce);
  json_builder_set_member_name (builder, "username");
  json_builder_add_string_value (builder, localpart);
  json_builder_set_member_name (builder, "password");
  json_builder_add_string_value (builder, password);
  json_builder_set_member_name (builder, "admin");
  json_builder_add_boolean_value (builder, FALSE);
  json_builder_set_member_name (builder, "mac");
  json_builder_add_string_value (builder, g_hmac_get_string (hmac));
  json_builder_end_object (builder);
  body_node = json_builder_get_root (builder);
  body = json_to_string (body_node, FALSE);

  reply = admin_call (session, "POST", url, body, error);
  if (reply == NULL)
    return NULL;
  return g_strdup (
      json_object_get_string_member_with_default (reply, "user_id", ""));
}
