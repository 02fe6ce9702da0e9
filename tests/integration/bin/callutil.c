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

#include <string.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "callutil.h"
#include "stackenv.h"
#include "testpictures.h"

JsonObject *
call_http_json (const gchar *method, const gchar *path, const gchar *token,
    const gchar *body, guint expect_status)
{
  g_autofree gchar *url
      = g_strconcat (stack_env_get ("MATRIXRTC_HS_URL"), path, NULL);
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;

  fail_unless (msg != NULL, "bad URL %s", url);
  if (token != NULL) {
    g_autofree gchar *auth = g_strdup_printf ("Bearer %s", token);
    soup_message_headers_replace (
        soup_message_get_request_headers (msg), "Authorization", auth);
  }
  if (body != NULL) {
    g_autoptr (GBytes) bytes = g_bytes_new (body, strlen (body));
    soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
  }
  reply = soup_session_send_and_read (session, msg, NULL, &error);
  fail_unless (
      reply != NULL, "%s %s: %s", method, path, error ? error->message : "?");
  fail_unless_equals_int (soup_message_get_status (msg), expect_status);
  fail_unless (json_parser_load_from_data (
      parser, g_bytes_get_data (reply, NULL), g_bytes_get_size (reply), NULL));
  root = json_parser_get_root (parser);
  fail_unless (root != NULL && JSON_NODE_HOLDS_OBJECT (root));
  return json_object_ref (json_node_get_object (root));
}

void
call_filter_known_warnings (void)
{
  gst_check_add_log_filter (NULL, G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING,
      g_regex_new ("jitter_buffer_set_retransmission", 0, 0, NULL), NULL, NULL,
      NULL);
}

gchar *
call_register_user (const gchar *prefix, gchar **password)
{
  const gchar *secret = stack_env_get ("MATRIXRTC_REGISTRATION_SECRET");
  g_autofree gchar *username
      = g_strdup_printf ("%s-%08x", prefix, g_random_int ());
  g_autoptr (JsonObject) nonce_reply = NULL, reply = NULL;
  g_autoptr (GHmac) hmac = NULL;
  g_autofree gchar *body = NULL;
  const gchar *nonce;

  *password = g_strdup_printf ("pw-%08x%08x", g_random_int (), g_random_int ());
  nonce_reply
      = call_http_json ("GET", "/_synapse/admin/v1/register", NULL, NULL, 200);
  nonce = json_object_get_string_member (nonce_reply, "nonce");
  hmac = g_hmac_new (G_CHECKSUM_SHA1, (const guchar *)secret, strlen (secret));
  g_hmac_update (hmac, (const guchar *)nonce, strlen (nonce));
  g_hmac_update (hmac, (const guchar *)"", 1);
  g_hmac_update (hmac, (const guchar *)username, strlen (username));
  g_hmac_update (hmac, (const guchar *)"", 1);
  g_hmac_update (hmac, (const guchar *)*password, strlen (*password));
  g_hmac_update (hmac, (const guchar *)"", 1);
  g_hmac_update (hmac, (const guchar *)"notadmin", 8);
  body = g_strdup_printf ("{\"nonce\":\"%s\",\"username\":\"%s\","
                          "\"password\":\"%s\",\"admin\":false,\"mac\":\"%s\"}",
      nonce, username, *password, g_hmac_get_string (hmac));
  reply
      = call_http_json ("POST", "/_synapse/admin/v1/register", NULL, body, 200);
  return g_strdup (json_object_get_string_member (reply, "user_id"));
}

gchar *
call_create_room (const gchar *user_id, const gchar *password)
{
  g_autofree gchar *body = g_strdup_printf (
      "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\","
      "\"user\":\"%s\"},\"password\":\"%s\"}",
      user_id, password);
  g_autoptr (JsonObject) login = NULL, room = NULL;

  login = call_http_json ("POST", "/_matrix/client/v3/login", NULL, body, 200);
  room = call_http_json ("POST", "/_matrix/client/v3/createRoom",
      json_object_get_string_member (login, "access_token"),
      /* as Element Call's rooms: members may write legacy memberships */
      "{\"preset\":\"public_chat\",\"power_level_content_override\":"
      "{\"events\":{\"org.matrix.msc3401.call.member\":0}}}",
      200);
  return g_strdup (json_object_get_string_member (room, "room_id"));
}

static MemberCounts *
counts_for (CallPeer *peer, const gchar *user_id)
{
  MemberCounts *c = g_hash_table_lookup (peer->counts, user_id);

  if (c == NULL) {
    c = g_new0 (MemberCounts, 1);
    g_hash_table_insert (peer->counts, g_strdup (user_id), c);
  }
  return c;
}

MemberCounts
call_peer_counts (CallPeer *peer, const gchar *user_id)
{
  MemberCounts copy;

  g_mutex_lock (&peer->lock);
  copy = *counts_for (peer, user_id);
  g_mutex_unlock (&peer->lock);
  return copy;
}

static gboolean
frame_is_black (const guint8 *rgb, gsize size)
{
  gsize i;

  for (i = 0; i < size; i += 97) {
    if (rgb[i] > 24)
      return FALSE;
  }
  return TRUE;
}

typedef struct
{
  CallPeer *peer;
  gchar *user_id;
} HandoffData;

static void
handoff_data_free (gpointer data, GClosure *closure)
{
  HandoffData *d = data;

  g_free (d->user_id);
  g_free (d);
}

static void
video_handoff (GstElement *sink, GstBuffer *buffer, GstPad *pad, HandoffData *d)
{
  GstMapInfo map;
  gboolean good = FALSE, black = FALSE, split = FALSE;
  MemberCounts *c;

  if (gst_buffer_map (buffer, &map, GST_MAP_READ)) {
    good
        = test_picture_shows_bars (map.data, map.size, CALL_WIDTH, CALL_HEIGHT);
    black = frame_is_black (map.data, map.size);
    split = test_picture_shows_split (
        map.data, map.size, CALL_WIDTH, CALL_HEIGHT);
    gst_buffer_unmap (buffer, &map);
  }
  g_mutex_lock (&d->peer->lock);
  c = counts_for (d->peer, d->user_id);
  if (c->video_frames == 0)
    c->first_video_us = g_get_monotonic_time ();
  c->video_frames++;
  if (good)
    c->video_good++;
  if (black)
    c->video_black++;
  if (split)
    c->video_split++;
  g_mutex_unlock (&d->peer->lock);
}

static void
audio_handoff (GstElement *sink, GstBuffer *buffer, GstPad *pad, HandoffData *d)
{
  g_mutex_lock (&d->peer->lock);
  counts_for (d->peer, d->user_id)->audio_buffers++;
  g_mutex_unlock (&d->peer->lock);
}

static GstElement *
make (const gchar *factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  fail_unless (e != NULL, "no element %s", factory);
  return e;
}

/* Links @pad to a decoding / checking chain. */
static void
on_pad_added (GstElement *call, GstPad *pad, CallPeer *peer)
{
  g_autofree gchar *user_id = NULL, *kind = NULL;
  g_autoptr (GstCaps) caps = NULL;
  GstElement *chain[6] = { NULL };
  GstElement *sink;
  HandoffData *d;
  GstPad *sinkpad;
  gboolean raw, video;
  guint n = 0, i;

  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
    return;
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (pad), "user-id")) {
    g_object_get (pad, "user-id", &user_id, "kind", &kind, NULL);
  } else {
    user_id = g_strdup ("");
    kind = g_strdup (GST_PAD_NAME (pad));
  }
  video = g_str_equal (kind, "video");
  caps = gst_pad_query_caps (pad, NULL);
  raw = g_str_has_suffix (G_OBJECT_TYPE_NAME (call), "Src");
  GST_INFO ("pad %s of %s (%s)", GST_PAD_NAME (pad), user_id, kind);

  chain[n++] = make ("queue");
  if (video) {
    if (!raw)
      chain[n++] = make ("vp8dec");
    chain[n++] = make ("videoconvert");
    chain[n++] = make ("videoscale");
    chain[n] = make ("capsfilter");
    g_object_set (chain[n++], "caps",
        gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "RGB",
            "width", G_TYPE_INT, CALL_WIDTH, "height", G_TYPE_INT, CALL_HEIGHT,
            NULL),
        NULL);
  }
  sink = chain[n++] = make ("fakesink");
  g_object_set (
      sink, "sync", FALSE, "async", FALSE, "signal-handoffs", TRUE, NULL);
  d = g_new0 (HandoffData, 1);
  d->peer = peer;
  d->user_id = g_strdup (user_id);
  g_signal_connect_data (sink, "handoff",
      video ? G_CALLBACK (video_handoff) : G_CALLBACK (audio_handoff), d,
      handoff_data_free, 0);
  for (i = 0; i < n; i++)
    gst_bin_add (GST_BIN (peer->pipeline), chain[i]);
  for (i = 1; i < n; i++)
    fail_unless (gst_element_link (chain[i - 1], chain[i]));
  for (i = n; i > 0; i--)
    gst_element_sync_state_with_parent (chain[i - 1]);
  sinkpad = gst_element_get_static_pad (chain[0], "sink");
  fail_unless_equals_int (gst_pad_link (pad, sinkpad), GST_PAD_LINK_OK);
  gst_object_unref (sinkpad);
  g_mutex_lock (&peer->lock);
  counts_for (peer, user_id)->pads_added++;
  g_mutex_unlock (&peer->lock);
}

static void
on_pad_removed (GstElement *call, GstPad *pad, CallPeer *peer)
{
  g_autofree gchar *user_id = NULL;

  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC
      || !g_object_class_find_property (G_OBJECT_GET_CLASS (pad), "user-id"))
    return;
  g_object_get (pad, "user-id", &user_id, NULL);
  g_mutex_lock (&peer->lock);
  counts_for (peer, user_id)->pads_removed++;
  g_mutex_unlock (&peer->lock);
}

static void
add_publisher_media (CallPeer *peer)
{
  GstElement *vsrc = make ("videotestsrc"), *vcaps = make ("capsfilter");
  GstElement *asrc = make ("audiotestsrc");

  gst_object_set_name (GST_OBJECT (vsrc), "video");
  g_object_set (vsrc, "is-live", TRUE, "pattern", 0, NULL);
  g_object_set (vcaps, "caps",
      gst_caps_new_simple ("video/x-raw", "width", G_TYPE_INT, CALL_WIDTH,
          "height", G_TYPE_INT, CALL_HEIGHT, "framerate", GST_TYPE_FRACTION, 15,
          1, NULL),
      NULL);
  g_object_set (asrc, "is-live", TRUE, NULL);
  gst_bin_add_many (GST_BIN (peer->pipeline), vsrc, vcaps, asrc, NULL);
  fail_unless (gst_element_link (vsrc, vcaps));
  fail_unless (gst_element_link_pads (vcaps, "src", peer->call, "video_%u"));
  fail_unless (gst_element_link_pads (asrc, "src", peer->call, "audio_%u"));
}

CallPeer *
call_peer_new (const gchar *factory, const gchar *prefix, const gchar *room_id,
    const gchar *token_service, gboolean publish, const gchar *first_property,
    ...)
{
  CallPeer *peer = g_new0 (CallPeer, 1);
  g_autofree gchar *password = NULL;
  va_list args;

  g_mutex_init (&peer->lock);
  peer->counts
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  peer->user_id = call_register_user (prefix, &password);
  peer->pipeline = gst_pipeline_new (prefix);
  peer->call = make (factory);
  g_object_set (peer->call, "homeserver", stack_env_get ("MATRIXRTC_HS_URL"),
      "user-id", peer->user_id, "password", password, "room", room_id,
      "token-service", token_service, "leave-delay", 3000, NULL);
  va_start (args, first_property);
  if (first_property != NULL)
    g_object_set_valist (G_OBJECT (peer->call), first_property, args);
  va_end (args);
  gst_bin_add (GST_BIN (peer->pipeline), peer->call);
  g_signal_connect (peer->call, "pad-added", G_CALLBACK (on_pad_added), peer);
  g_signal_connect (
      peer->call, "pad-removed", G_CALLBACK (on_pad_removed), peer);
  if (publish)
    add_publisher_media (peer);
  return peer;
}

void
call_peer_start (CallPeer *peer)
{
  /* Pads that exist already (matrixrtcsrc member pads). */
  GstIterator *it = gst_element_iterate_src_pads (peer->call);
  GValue item = G_VALUE_INIT;

  while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    on_pad_added (peer->call, g_value_get_object (&item), peer);
    g_value_reset (&item);
  }
  gst_iterator_free (it);
  fail_unless (gst_element_set_state (peer->pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
}

void
call_check_bus (CallPeer *peer)
{
  GstBus *bus = gst_element_get_bus (peer->pipeline);
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (
              bus, GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT))) {
    const GstStructure *s = gst_message_get_structure (msg);

    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err = NULL;
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      fail ("pipeline error from %s: %s (%s)", GST_OBJECT_NAME (msg->src),
          err->message, dbg);
    }
    if (s != NULL && gst_structure_has_name (s, "matrixrtc-member-joined"))
      g_atomic_int_inc (&peer->members_joined);
    if (s != NULL && gst_structure_has_name (s, "matrixrtc-member-left"))
      g_atomic_int_inc (&peer->members_left);
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
}

void
call_peer_free (CallPeer *peer)
{
  if (peer == NULL)
    return;
  gst_element_set_state (peer->pipeline, GST_STATE_NULL);
  gst_object_unref (peer->pipeline);
  g_hash_table_unref (peer->counts);
  g_mutex_clear (&peer->lock);
  g_free (peer->user_id);
  g_free (peer);
}
