/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Faults a real SFU cannot produce, injected by a minimal fake SFU (a
 * SoupServer speaking our protobuf, with a webrtcbin as its subscriber
 * PeerConnection), beside the real-SFU tests in lkmedia.c:
 *  - the offer's a=fingerprint does not match the DTLS certificate the
 *    peer presents: the connection must refuse the session (webrtcbin 1.22
 *    does not check it itself);
 *  - malformed signalling messages are counted and dropped. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <libsoup/soup.h>
#include <string.h>

#include "lkconnection.h"
#include "lksdp.h"
#include "lktestutil.h"
#include "lktoken.h"

typedef struct
{
  SoupServer *server;
  guint port;
  SoupWebsocketConnection *ws;
  GstElement *pipeline;
  GstElement *webrtc;
  GstWebRTCDataChannel *channel;
  gboolean forge_fingerprint;
  gboolean send_garbage;
  gboolean no_media; /* signalling only */
  gint ping_timeout; /* for the JoinResponse, 0: 15 */
  gint connections;
  gboolean answered;
} FakeSfu;

static void
fake_send (FakeSfu *f, Lkproto__SignalResponse *resp)
{
  gsize size = lkproto__signal_response__get_packed_size (resp);
  guint8 *buf = g_malloc (size);

  lkproto__signal_response__pack (resp, buf);
  soup_websocket_connection_send_binary (f->ws, buf, size);
  g_free (buf);
}

typedef struct
{
  FakeSfu *f;
  gchar *sdp;
} OfferData;

static gboolean
fake_send_offer (gpointer data)
{
  OfferData *o = data;
  Lkproto__SignalResponse resp = LKPROTO__SIGNAL_RESPONSE__INIT;
  Lkproto__SessionDescription sd = LKPROTO__SESSION_DESCRIPTION__INIT;

  sd.type = (gchar *)"offer";
  sd.sdp = o->sdp;
  sd.id = 1;
  resp.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_OFFER;
  resp.offer = &sd;
  fake_send (o->f, &resp);
  g_free (o->sdp);
  g_free (o);
  return G_SOURCE_REMOVE;
}

static void
fake_offer_created (GstPromise *promise, gpointer user_data)
{
  FakeSfu *f = user_data;
  GstWebRTCSessionDescription *offer = NULL;
  OfferData *o = g_new0 (OfferData, 1);
  gchar *text;

  gst_structure_get (gst_promise_get_reply (promise), "offer",
      GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, NULL);
  gst_promise_unref (promise);
  g_signal_emit_by_name (f->webrtc, "set-local-description", offer, NULL);
  text = gst_sdp_message_as_text (offer->sdp);
  if (f->forge_fingerprint) {
    /* replace every fingerprint value with another valid-looking one */
    GRegex *re
        = g_regex_new ("(a=fingerprint:sha-256 )[0-9A-Fa-f:]+", 0, 0, NULL);
    gchar *forged = g_regex_replace (re, text, -1, 0,
        "\\1AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:"
        "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB",
        0, NULL);
    g_regex_unref (re);
    g_free (text);
    text = forged;
  }
  o->f = f;
  o->sdp = text;
  gst_webrtc_session_description_free (offer);
  g_main_context_invoke (NULL, fake_send_offer, o);
}

typedef struct
{
  FakeSfu *f;
  guint mline;
  gchar *candidate;
} CandData;

static gboolean
fake_send_candidate (gpointer data)
{
  CandData *c = data;
  Lkproto__SignalResponse resp = LKPROTO__SIGNAL_RESPONSE__INIT;
  Lkproto__TrickleRequest trickle = LKPROTO__TRICKLE_REQUEST__INIT;
  gchar *init = lk_sdp_candidate_init_to_json (c->candidate, "0", c->mline);

  trickle.candidateinit = init;
  trickle.target = LKPROTO__SIGNAL_TARGET__SUBSCRIBER;
  resp.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_TRICKLE;
  resp.trickle = &trickle;
  fake_send (c->f, &resp);
  g_free (init);
  g_free (c->candidate);
  g_free (c);
  return G_SOURCE_REMOVE;
}

static void
fake_on_ice_candidate (
    GstElement *webrtc, guint mline, gchar *candidate, FakeSfu *f)
{
  CandData *c = g_new0 (CandData, 1);

  c->f = f;
  c->mline = mline;
  c->candidate = g_strdup (candidate);
  g_main_context_invoke (NULL, fake_send_candidate, c);
}

static void
fake_on_message (
    SoupWebsocketConnection *ws, gint type, GBytes *message, FakeSfu *f)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (message, &size);
  Lkproto__SignalRequest *req;

  req = lkproto__signal_request__unpack (NULL, size, data);
  if (req == NULL)
    return;
  if (req->message_case == LKPROTO__SIGNAL_REQUEST__MESSAGE_ANSWER) {
    GstSDPMessage *sdp = NULL;
    GstWebRTCSessionDescription *desc;

    gst_sdp_message_new_from_text (req->answer->sdp, &sdp);
    desc = gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
    g_signal_emit_by_name (f->webrtc, "set-remote-description", desc, NULL);
    gst_webrtc_session_description_free (desc);
    f->answered = TRUE;
  } else if (req->message_case == LKPROTO__SIGNAL_REQUEST__MESSAGE_TRICKLE
             && req->trickle->target == LKPROTO__SIGNAL_TARGET__SUBSCRIBER) {
    gchar *cand = NULL, *mid = NULL;
    gint mline = 0;

    if (lk_sdp_candidate_init_from_json (
            req->trickle->candidateinit, &cand, &mid, &mline, NULL)
        && *cand != '\0')
      g_signal_emit_by_name (
          f->webrtc, "add-ice-candidate", (guint)MAX (mline, 0), cand);
    g_free (cand);
    g_free (mid);
  }
  lkproto__signal_request__free_unpacked (req, NULL);
}

static void
fake_ws_cb (SoupServer *server, SoupServerMessage *msg, const char *path,
    SoupWebsocketConnection *ws, gpointer user_data)
{
  FakeSfu *f = user_data;
  Lkproto__SignalResponse resp = LKPROTO__SIGNAL_RESPONSE__INIT;
  Lkproto__JoinResponse join = LKPROTO__JOIN_RESPONSE__INIT;
  Lkproto__ParticipantInfo me = LKPROTO__PARTICIPANT_INFO__INIT;
  GstElement *webrtc;
  GstWebRTCICE *ice = NULL;
  gboolean ok;

  f->connections++;
  if (f->ws != NULL)
    g_signal_handlers_disconnect_by_data (f->ws, f);
  g_clear_object (&f->ws);
  f->ws = g_object_ref (ws);
  g_signal_connect (ws, "message", G_CALLBACK (fake_on_message), f);

  me.sid = (gchar *)"PA_fake";
  me.identity = (gchar *)"tester";
  join.participant = &me;
  join.subscriber_primary = TRUE;
  join.ping_interval = f->ping_timeout ? 1 : 5;
  join.ping_timeout = f->ping_timeout ? f->ping_timeout : 15;
  resp.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_JOIN;
  resp.join = &join;
  fake_send (f, &resp);
  if (f->no_media)
    return;

  if (f->send_garbage) {
    static const guint8 garbage[] = { 0x0a, 0x7f, 0x01, 0x02 };
    soup_websocket_connection_send_binary (ws, garbage, sizeof (garbage));
    soup_websocket_connection_send_text (ws, "{\"ping\":\"1\"}");
  }

  /* the SFU's subscriber PeerConnection: it offers a data channel */
  f->pipeline = gst_pipeline_new ("fake-sfu");
  webrtc = gst_element_factory_make ("webrtcbin", "fake-sfu-webrtc");
  gst_util_set_object_arg (G_OBJECT (webrtc), "bundle-policy", "max-bundle");
  gst_bin_add (GST_BIN (f->pipeline), webrtc);
  f->webrtc = webrtc;
  g_object_get (webrtc, "ice-agent", &ice, NULL);
  g_signal_emit_by_name (ice, "add-local-ip-address", "127.0.0.1", &ok);
  gst_object_unref (ice);
  g_signal_connect (
      webrtc, "on-ice-candidate", G_CALLBACK (fake_on_ice_candidate), f);
  gst_element_set_state (f->pipeline, GST_STATE_PLAYING);
  g_signal_emit_by_name (
      webrtc, "create-data-channel", "_reliable", NULL, &f->channel);
  g_signal_emit_by_name (webrtc, "create-offer", NULL,
      gst_promise_new_with_change_func (fake_offer_created, f, NULL));
}

static void
fake_sfu_start (FakeSfu *f)
{
  GError *error = NULL;
  GSList *uris;

  f->server = soup_server_new (NULL, NULL);
  soup_server_add_websocket_handler (
      f->server, "/rtc", NULL, NULL, fake_ws_cb, f, NULL);
  fail_unless (soup_server_listen_local (
      f->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error));
  uris = soup_server_get_uris (f->server);
  f->port = g_uri_get_port (uris->data);
  g_slist_free_full (uris, (GDestroyNotify)g_uri_unref);
}

static void
fake_sfu_stop (FakeSfu *f)
{
  if (f->pipeline) {
    gst_element_set_state (f->pipeline, GST_STATE_NULL);
    gst_object_unref (f->pipeline);
  }
  g_clear_object (&f->channel);
  if (f->ws
      && soup_websocket_connection_get_state (f->ws)
             == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (f->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  g_clear_object (&f->ws);
  soup_server_disconnect (f->server);
  g_object_unref (f->server);
}

static LkConnection *
connect_to_fake (FakeSfu *f, GstElement *pipeline)
{
  gchar *url = g_strdup_printf ("ws://127.0.0.1:%u", f->port);
  LkConnection *conn = lkt_make_connection (
      "conn", url, "fakekey", "fake-secret", "tester", "room");

  g_free (url);
  g_object_set (conn, "reconnect", FALSE, NULL);
  gst_bin_add (GST_BIN (pipeline), GST_ELEMENT (conn));
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  lk_connection_connect (conn);
  return conn;
}

/* The control: with an honest fingerprint the session stands. */
GST_START_TEST (test_fake_sfu_fingerprint_ok)
{
  FakeSfu f = { 0 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;
  GstWebRTCPeerConnectionState state = 0;
  guint failures = 1;

  fake_sfu_start (&f);
  conn = connect_to_fake (&f, pipeline);
  WAIT_FOR (pipeline, f.webrtc != NULL && f.answered, 10);
  WAIT_FOR (pipeline,
      (g_object_get (f.webrtc, "connection-state", &state, NULL),
          state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED),
      10);
  g_usleep (300 * 1000);
  lkt_check_bus (pipeline);
  g_object_get (conn, "fingerprint-failures", &failures, NULL);
  fail_unless_equals_int (state, GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED);
  fail_unless_equals_int (failures, 0);
  fail_unless_equals_int (
      lk_connection_get_state (conn), LK_CONNECTION_STATE_CONNECTED);
  lkt_stop_pipeline (pipeline);
  fake_sfu_stop (&f);
}

GST_END_TEST;

/* A forged fingerprint: DTLS completes (webrtcbin 1.22 accepts any peer
 * certificate), our check refuses the session. */
GST_START_TEST (test_fake_sfu_fingerprint_mismatch)
{
  FakeSfu f = { 0 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg;
  GError *error = NULL;
  gchar *debug = NULL;
  guint failures = 0;

  f.forge_fingerprint = TRUE;
  fake_sfu_start (&f);
  conn = connect_to_fake (&f, pipeline);
  msg = NULL;
  {
    gint64 end = g_get_monotonic_time () + 15 * G_USEC_PER_SEC;
    while (msg == NULL && g_get_monotonic_time () < end) {
      while (g_main_context_iteration (NULL, FALSE))
        ;
      msg = gst_bus_timed_pop_filtered (
          bus, 20 * GST_MSECOND, GST_MESSAGE_ERROR);
    }
  }
  fail_unless (msg != NULL, "the forged fingerprint went unnoticed");
  gst_message_parse_error (msg, &error, &debug);
  g_print ("forged fingerprint: %s\n", debug);
  fail_unless (strstr (debug, "fingerprint") != NULL, "%s", debug);
  g_object_get (conn, "fingerprint-failures", &failures, NULL);
  fail_unless_equals_int (failures, 1);
  fail_unless_equals_int (
      lk_connection_get_state (conn), LK_CONNECTION_STATE_FAILED);
  g_clear_error (&error);
  g_free (debug);
  gst_message_unref (msg);
  gst_object_unref (bus);
  lkt_stop_pipeline (pipeline);
  fake_sfu_stop (&f);
}

GST_END_TEST;

/* Malformed binary and unexpected text frames are counted and dropped; the
 * session goes on. */
GST_START_TEST (test_fake_sfu_malformed_messages)
{
  FakeSfu f = { 0 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;
  guint dropped = 0;

  f.send_garbage = TRUE;
  fake_sfu_start (&f);
  conn = connect_to_fake (&f, pipeline);
  WAIT_FOR (pipeline,
      (g_object_get (conn, "dropped-messages", &dropped, NULL), dropped >= 2),
      10);
  WAIT_FOR (pipeline, f.answered, 10);
  fail_unless_equals_int (dropped, 2);
  fail_unless (f.answered, "no answer after the malformed messages");
  fail_unless_equals_int (
      lk_connection_get_state (conn), LK_CONNECTION_STATE_CONNECTED);
  lkt_stop_pipeline (pipeline);
  fake_sfu_stop (&f);
}

GST_END_TEST;

/* A server that stops talking: after JoinResponse.ping_timeout without a
 * message the connection gives up the session and rejoins. */
GST_START_TEST (test_fake_sfu_ping_timeout)
{
  FakeSfu f = { 0 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;
  guint reconnects = 0;
  gint64 start = g_get_monotonic_time ();

  f.no_media = TRUE;
  f.ping_timeout = 2;
  fake_sfu_start (&f);
  conn = connect_to_fake (&f, pipeline);
  g_object_set (conn, "reconnect", TRUE, NULL);
  WAIT_FOR (pipeline, f.connections >= 2, 10);
  g_object_get (conn, "reconnects", &reconnects, NULL);
  g_print ("ping timeout: rejoined after %" G_GINT64_FORMAT " ms\n",
      (g_get_monotonic_time () - start) / 1000);
  fail_unless (f.connections >= 2, "no rejoin after the ping timeout");
  fail_unless (reconnects >= 1);
  lkt_stop_pipeline (pipeline);
  fake_sfu_stop (&f);
}

GST_END_TEST;

static void
token_handler (SoupServer *server, SoupServerMessage *msg, const char *path,
    GHashTable *query, gpointer user_data)
{
  gint *legacy_calls = user_data;
  static const gchar reply[] = "{\"url\":\"ws://127.0.0.1:1\",\"jwt\":"
                               "\"h.p.s\"}";
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  GBytes *bytes = soup_message_body_flatten (body);

  if (g_str_equal (path, "/sfu/get")) {
    /* the legacy body */
    fail_unless (
        strstr (g_bytes_get_data (bytes, NULL), "\"device_id\"") != NULL);
    (*legacy_calls)++;
    soup_server_message_set_status (msg, 200, NULL);
    soup_server_message_set_response (
        msg, "application/json", SOUP_MEMORY_STATIC, reply, strlen (reply));
  } else {
    soup_server_message_set_status (msg, 404, NULL);
  }
  g_bytes_unref (bytes);
}

typedef struct
{
  gboolean done, ok;
  gchar *url, *jwt;
  GError *error;
} TokenResult;

static void
token_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
  TokenResult *r = user_data;

  r->ok = lk_token_request_finish (res, &r->url, &r->jwt, &r->error);
  r->done = TRUE;
}

/* A token service from before MSC4195 (no /get_token): the request falls
 * back to the legacy /sfu/get. */
GST_START_TEST (test_token_legacy_fallback)
{
  SoupServer *server = soup_server_new (NULL, NULL);
  SoupSession *session = soup_session_new ();
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkTokenRequest req = { 0 };
  TokenResult r = { 0 };
  gint legacy_calls = 0;
  GSList *uris;
  gchar *service;

  soup_server_add_handler (server, NULL, token_handler, &legacy_calls, NULL);
  fail_unless (
      soup_server_listen_local (server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, NULL));
  uris = soup_server_get_uris (server);
  service
      = g_strdup_printf ("http://127.0.0.1:%d/", g_uri_get_port (uris->data));
  g_slist_free_full (uris, (GDestroyNotify)g_uri_unref);
  req.room_id = g_strdup ("!r:example.org");
  req.device_id = g_strdup ("DEV");
  lk_token_request_async (session, service, &req, NULL, token_done, &r);
  WAIT_FOR (pipeline, r.done, 10);
  fail_unless (r.ok, "%s", r.error ? r.error->message : "");
  fail_unless_equals_int (legacy_calls, 1);
  fail_unless_equals_string (r.url, "ws://127.0.0.1:1");
  fail_unless_equals_string (r.jwt, "h.p.s");
  g_free (r.url);
  g_free (r.jwt);
  g_free (service);
  lk_token_request_clear (&req);
  g_object_unref (session);
  soup_server_disconnect (server);
  g_object_unref (server);
  gst_object_unref (pipeline);
}

GST_END_TEST;

static Suite *
lkfakesfu_suite (void)
{
  Suite *s = suite_create ("livekit-fake-sfu");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_fake_sfu_fingerprint_ok);
  tcase_add_test (tc, test_fake_sfu_fingerprint_mismatch);
  tcase_add_test (tc, test_fake_sfu_malformed_messages);
  tcase_add_test (tc, test_fake_sfu_ping_timeout);
  tcase_add_test (tc, test_token_legacy_fallback);
  return s;
}

GST_CHECK_MAIN (lkfakesfu);
