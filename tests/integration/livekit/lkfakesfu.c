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
 *    the same for the publisher's answer; media-carrying variants show
 *    that no buffer reaches a src pad and no RTP leaves our publisher;
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
  gboolean forge_fingerprint; /* in the subscriber offer */
  gboolean with_video;        /* the subscriber offer carries a VP8 track */
  gboolean handle_publisher;  /* answer our publisher, TrackPublished */
  gboolean forge_pub_answer;  /* forged fingerprint in that answer */
  GstElement *pub_webrtc;     /* the SFU's side of our publisher */
  gint rtp_received;          /* RTP buffers from our publisher (atomic) */
  guint next_track;
  const gchar *refresh_token; /* sent after the join, then the WebSocket
                               * is closed; refused (401) afterwards */
  gint refresh_refused;       /* joins with the refresh token, refused */
  gint minted_accepted;       /* joins with a token signed by our key */
  gboolean flood; /* publisher trickles we never asked for, participants */
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
  gchar *video_mid;
  gboolean answer; /* our publisher's answer, not a subscriber offer */
  guint id;
} OfferData;

static gboolean
fake_send_offer (gpointer data)
{
  OfferData *o = data;
  Lkproto__SignalResponse resp = LKPROTO__SIGNAL_RESPONSE__INIT;
  Lkproto__SessionDescription sd = LKPROTO__SESSION_DESCRIPTION__INIT;
  Lkproto__StringEntry entry = LKPROTO__STRING_ENTRY__INIT;
  Lkproto__StringEntry *entries[1] = { &entry };

  sd.type = (gchar *)(o->answer ? "answer" : "offer");
  sd.sdp = o->sdp;
  sd.id = o->answer ? o->id : 1;
  if (o->video_mid != NULL) {
    entry.key = o->video_mid;
    entry.value = (gchar *)"TR_fakevideo";
    sd.n_mid_to_track_id = 1;
    sd.mid_to_track_id = entries;
  }
  if (o->answer) {
    resp.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_ANSWER;
    resp.answer = &sd;
  } else {
    resp.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_OFFER;
    resp.offer = &sd;
  }
  fake_send (o->f, &resp);
  g_free (o->sdp);
  g_free (o->video_mid);
  g_free (o);
  return G_SOURCE_REMOVE;
}

static gchar *
forge_fingerprints (gchar *text)
{
  /* replace every fingerprint value with another valid-looking one */
  GRegex *re
      = g_regex_new ("(a=fingerprint:sha-256 )[0-9A-Fa-f:]+", 0, 0, NULL);
  gchar *forged = g_regex_replace (re, text, -1, 0,
      "\\1AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:"
      "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB",
      0, NULL);

  g_regex_unref (re);
  g_free (text);
  return forged;
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
  if (f->forge_fingerprint)
    text = forge_fingerprints (text);
  {
    guint i;

    /* the video m-line's mid carries the remote participant's track */
    for (i = 0; i < gst_sdp_message_medias_len (offer->sdp); i++) {
      const GstSDPMedia *m = gst_sdp_message_get_media (offer->sdp, i);
      if (g_strcmp0 (gst_sdp_media_get_media (m), "video") == 0)
        o->video_mid = g_strdup (gst_sdp_media_get_attribute_val (m, "mid"));
    }
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
  Lkproto__SignalTarget target;
} CandData;

static gboolean
fake_send_candidate (gpointer data)
{
  CandData *c = data;
  Lkproto__SignalResponse resp = LKPROTO__SIGNAL_RESPONSE__INIT;
  Lkproto__TrickleRequest trickle = LKPROTO__TRICKLE_REQUEST__INIT;
  gchar *init = lk_sdp_candidate_init_to_json (c->candidate, "0", c->mline);

  trickle.candidateinit = init;
  trickle.target = c->target;
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
  c->target = webrtc == f->pub_webrtc ? LKPROTO__SIGNAL_TARGET__PUBLISHER
                                      : LKPROTO__SIGNAL_TARGET__SUBSCRIBER;
  g_main_context_invoke (NULL, fake_send_candidate, c);
}

/* ---- the SFU's side of our publisher ---- */

static GstPadProbeReturn
fake_count_rtp (GstPad *pad, GstPadProbeInfo *info, FakeSfu *f)
{
  g_atomic_int_inc (&f->rtp_received);
  return GST_PAD_PROBE_OK;
}

static void
fake_pub_pad_added (GstElement *webrtc, GstPad *pad, FakeSfu *f)
{
  GstElement *sink;
  GstPad *sinkpad;

  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
    return;
  gst_pad_add_probe (pad,
      GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
      (GstPadProbeCallback)fake_count_rtp, f, NULL);
  sink = gst_element_factory_make ("fakesink", NULL);
  g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
  gst_bin_add (GST_BIN (f->pipeline), sink);
  gst_element_sync_state_with_parent (sink);
  sinkpad = gst_element_get_static_pad (sink, "sink");
  gst_pad_link (pad, sinkpad);
  gst_object_unref (sinkpad);
}

typedef struct
{
  FakeSfu *f;
  guint id;
} AnswerCtx;

static void
fake_pub_answer_created (GstPromise *promise, gpointer user_data)
{
  AnswerCtx *ctx = user_data;
  FakeSfu *f = ctx->f;
  GstWebRTCSessionDescription *answer = NULL;
  OfferData *o = g_new0 (OfferData, 1);
  gchar *text;

  gst_structure_get (gst_promise_get_reply (promise), "answer",
      GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL);
  gst_promise_unref (promise);
  g_signal_emit_by_name (f->pub_webrtc, "set-local-description", answer, NULL);
  text = gst_sdp_message_as_text (answer->sdp);
  if (f->forge_pub_answer)
    text = forge_fingerprints (text);
  gst_webrtc_session_description_free (answer);
  o->f = f;
  o->sdp = text;
  o->answer = TRUE;
  o->id = ctx->id;
  g_free (ctx);
  g_main_context_invoke (NULL, fake_send_offer, o);
}

static void
fake_pub_offer (FakeSfu *f, Lkproto__SessionDescription *offer)
{
  GstSDPMessage *sdp = NULL;
  GstWebRTCSessionDescription *desc;
  AnswerCtx *ctx = g_new0 (AnswerCtx, 1);

  if (f->pub_webrtc == NULL) {
    GstWebRTCICE *ice = NULL;
    gboolean ok;

    f->pub_webrtc = gst_element_factory_make ("webrtcbin", "fake-sfu-pub");
    gst_util_set_object_arg (
        G_OBJECT (f->pub_webrtc), "bundle-policy", "max-bundle");
    gst_bin_add (GST_BIN (f->pipeline), f->pub_webrtc);
    g_object_get (f->pub_webrtc, "ice-agent", &ice, NULL);
    g_signal_emit_by_name (ice, "add-local-ip-address", "127.0.0.1", &ok);
    gst_object_unref (ice);
    g_signal_connect (f->pub_webrtc, "on-ice-candidate",
        G_CALLBACK (fake_on_ice_candidate), f);
    g_signal_connect (
        f->pub_webrtc, "pad-added", G_CALLBACK (fake_pub_pad_added), f);
    gst_element_sync_state_with_parent (f->pub_webrtc);
  }
  gst_sdp_message_new_from_text (offer->sdp, &sdp);
  desc = gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_OFFER, sdp);
  g_signal_emit_by_name (f->pub_webrtc, "set-remote-description", desc, NULL);
  gst_webrtc_session_description_free (desc);
  ctx->f = f;
  ctx->id = offer->id;
  g_signal_emit_by_name (f->pub_webrtc, "create-answer", NULL,
      gst_promise_new_with_change_func (fake_pub_answer_created, ctx, NULL));
}

static void
fake_track_published (FakeSfu *f, Lkproto__AddTrackRequest *add)
{
  Lkproto__SignalResponse resp = LKPROTO__SIGNAL_RESPONSE__INIT;
  Lkproto__TrackPublishedResponse tp = LKPROTO__TRACK_PUBLISHED_RESPONSE__INIT;
  Lkproto__TrackInfo info = LKPROTO__TRACK_INFO__INIT;
  g_autofree gchar *sid = g_strdup_printf ("TR_pub%u", f->next_track++);

  info.sid = sid;
  info.type = add->type;
  info.name = add->name;
  info.source = add->source;
  tp.cid = add->cid;
  tp.track = &info;
  resp.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_TRACK_PUBLISHED;
  resp.track_published = &tp;
  fake_send (f, &resp);
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
  if (f->handle_publisher
      && req->message_case == LKPROTO__SIGNAL_REQUEST__MESSAGE_ADD_TRACK) {
    fake_track_published (f, req->add_track);
  } else if (f->handle_publisher
             && req->message_case == LKPROTO__SIGNAL_REQUEST__MESSAGE_OFFER) {
    fake_pub_offer (f, req->offer);
  } else if (f->pub_webrtc != NULL
             && req->message_case == LKPROTO__SIGNAL_REQUEST__MESSAGE_TRICKLE
             && req->trickle->target == LKPROTO__SIGNAL_TARGET__PUBLISHER) {
    gchar *cand = NULL, *mid = NULL;
    gint mline = 0;

    if (lk_sdp_candidate_init_from_json (
            req->trickle->candidateinit, &cand, &mid, &mline, NULL)
        && *cand != '\0')
      g_signal_emit_by_name (
          f->pub_webrtc, "add-ice-candidate", (guint)MAX (mline, 0), cand);
    g_free (cand);
    g_free (mid);
  } else if (req->message_case == LKPROTO__SIGNAL_REQUEST__MESSAGE_ANSWER) {
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

static gboolean
fake_close_ws (gpointer data)
{
  FakeSfu *f = data;

  if (f->ws != NULL
      && soup_websocket_connection_get_state (f->ws)
             == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (
        f->ws, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, NULL);
  return G_SOURCE_REMOVE;
}

/* Before the upgrade: an expired refresh token gets 401, as LiveKit
 * answers an expired JWT. */
static void
fake_early_cb (SoupServer *server, SoupServerMessage *msg, const char *path,
    GHashTable *query, gpointer user_data)
{
  FakeSfu *f = user_data;
  const gchar *auth = soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Authorization");

  if (f->refresh_token == NULL || auth == NULL
      || !g_str_has_prefix (auth, "Bearer "))
    return;
  if (g_str_equal (auth + 7, f->refresh_token)) {
    f->refresh_refused++;
    soup_server_message_set_status (msg, 401, NULL);
  } else if (lk_token_verify (auth + 7, "fake-secret")) {
    f->minted_accepted++;
  }
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

  Lkproto__ParticipantInfo remote = LKPROTO__PARTICIPANT_INFO__INIT;
  Lkproto__ParticipantInfo *others[1] = { &remote };
  Lkproto__TrackInfo video = LKPROTO__TRACK_INFO__INIT;
  Lkproto__TrackInfo *tracks[1] = { &video };

  me.sid = (gchar *)"PA_fake";
  me.identity = (gchar *)"tester";
  join.participant = &me;
  if (f->with_video) {
    video.sid = (gchar *)"TR_fakevideo";
    video.type = LKPROTO__TRACK_TYPE__VIDEO;
    video.source = LKPROTO__TRACK_SOURCE__CAMERA;
    remote.sid = (gchar *)"PA_remote";
    remote.identity = (gchar *)"remote";
    remote.state = LKPROTO__PARTICIPANT_STATE__ACTIVE;
    remote.n_tracks = 1;
    remote.tracks = tracks;
    join.n_other_participants = 1;
    join.other_participants = others;
  }
  join.subscriber_primary = TRUE;
  join.ping_interval = f->ping_timeout ? 1 : 5;
  join.ping_timeout = f->ping_timeout ? f->ping_timeout : 15;
  resp.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_JOIN;
  resp.join = &join;
  fake_send (f, &resp);
  if (f->flood) {
    Lkproto__SignalResponse r = LKPROTO__SIGNAL_RESPONSE__INIT;
    Lkproto__TrickleRequest trickle = LKPROTO__TRICKLE_REQUEST__INIT;
    Lkproto__ParticipantUpdate update = LKPROTO__PARTICIPANT_UPDATE__INIT;
    Lkproto__ParticipantInfo **people
        = g_new0 (Lkproto__ParticipantInfo *, 600);
    gchar *init;
    guint i;

    /* we publish nothing, so the publisher transport never takes these */
    for (i = 0; i < 200; i++) {
      g_autofree gchar *cand = g_strdup_printf (
          "candidate:%u 1 UDP 2122252543 127.0.0.1 %u typ host", i, 10000 + i);
      init = lk_sdp_candidate_init_to_json (cand, "0", 0);
      trickle.candidateinit = init;
      trickle.target = LKPROTO__SIGNAL_TARGET__PUBLISHER;
      r.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_TRICKLE;
      r.trickle = &trickle;
      fake_send (f, &r);
      g_free (init);
    }
    for (i = 0; i < 600; i++) {
      people[i] = g_new0 (Lkproto__ParticipantInfo, 1);
      lkproto__participant_info__init (people[i]);
      people[i]->sid = g_strdup_printf ("PA_flood%u", i);
      people[i]->identity = g_strdup_printf ("flood%u", i);
      people[i]->state = LKPROTO__PARTICIPANT_STATE__ACTIVE;
    }
    update.n_participants = 600;
    update.participants = people;
    r.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_UPDATE;
    r.update = &update;
    fake_send (f, &r);
    for (i = 0; i < 600; i++) {
      g_free (people[i]->sid);
      g_free (people[i]->identity);
      g_free (people[i]);
    }
    g_free (people);
  }
  if (f->refresh_token != NULL && f->connections == 1) {
    Lkproto__SignalResponse refresh = LKPROTO__SIGNAL_RESPONSE__INIT;

    refresh.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_REFRESH_TOKEN;
    refresh.refresh_token = (gchar *)f->refresh_token;
    fake_send (f, &refresh);
    g_timeout_add (200, fake_close_ws, f);
  }
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
  if (f->with_video) {
    /* a remote participant's camera: VP8 over the subscriber transport */
    GstElement *src, *enc, *pay;
    GstPad *sinkpad, *srcpad;
    GstWebRTCRTPTransceiver *trans = NULL;
    GstCaps *caps = gst_caps_from_string (
        "application/x-rtp,media=video,encoding-name=VP8,payload=96,"
        "clock-rate=90000");

    src = gst_element_factory_make ("videotestsrc", NULL);
    g_object_set (src, "is-live", TRUE, NULL);
    enc = gst_element_factory_make ("vp8enc", NULL);
    g_object_set (enc, "deadline", (gint64)1, "keyframe-max-dist", 10, NULL);
    pay = gst_element_factory_make ("rtpvp8pay", NULL);
    g_object_set (pay, "pt", 96, NULL);
    gst_bin_add_many (GST_BIN (f->pipeline), src, enc, pay, NULL);
    fail_unless (gst_element_link_many (src, enc, pay, NULL));
    sinkpad = gst_element_request_pad_simple (webrtc, "sink_%u");
    g_object_get (sinkpad, "transceiver", &trans, NULL);
    g_object_set (trans, "direction",
        GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, "codec-preferences",
        caps, NULL);
    gst_object_unref (trans);
    gst_caps_unref (caps);
    srcpad = gst_element_get_static_pad (pay, "src");
    fail_unless_equals_int (gst_pad_link (srcpad, sinkpad), GST_PAD_LINK_OK);
    gst_object_unref (srcpad);
    gst_object_unref (sinkpad);
  }
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
  soup_server_add_early_handler (f->server, "/rtc", fake_early_cb, f, NULL);
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

/* Buffers that reached any of the connection's src pads. */
static gint src_buffers;

static GstPadProbeReturn
count_src_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  g_atomic_int_inc (&src_buffers);
  return GST_PAD_PROBE_OK;
}

static void
on_conn_pad_added (GstElement *conn, GstPad *pad, gpointer user_data)
{
  if (GST_PAD_DIRECTION (pad) == GST_PAD_SRC)
    gst_pad_add_probe (pad,
        GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
        count_src_buffer, NULL, NULL);
}

/* Links each remote track, as an application would. */
static void
on_track_added (LkConnection *conn, const gchar *identity,
    const gchar *participant_sid, const gchar *track_sid, const gchar *source,
    const gchar *kind, gboolean encrypted, GstPad *pad, GstElement *pipeline)
{
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  GstPad *sinkpad;

  g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
  gst_bin_add (GST_BIN (pipeline), sink);
  gst_element_sync_state_with_parent (sink);
  sinkpad = gst_element_get_static_pad (sink, "sink");
  fail_unless_equals_int (gst_pad_link (pad, sinkpad), GST_PAD_LINK_OK);
  gst_object_unref (sinkpad);
}

static LkConnection *
connect_to_fake_full (FakeSfu *f, GstElement *pipeline, gboolean publish)
{
  gchar *url = g_strdup_printf ("ws://127.0.0.1:%u", f->port);
  LkConnection *conn = lkt_make_connection (
      "conn", url, "fakekey", "fake-secret", "tester", "room");

  g_free (url);
  g_atomic_int_set (&src_buffers, 0);
  g_object_set (conn, "reconnect", FALSE, NULL);
  gst_bin_add (GST_BIN (pipeline), GST_ELEMENT (conn));
  g_signal_connect (conn, "pad-added", G_CALLBACK (on_conn_pad_added), NULL);
  g_signal_connect (conn, "track-added", G_CALLBACK (on_track_added), pipeline);
  if (publish)
    lkt_add_publisher_media (pipeline, conn, FALSE, FALSE, NULL);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  lk_connection_connect (conn);
  return conn;
}

static LkConnection *
connect_to_fake (FakeSfu *f, GstElement *pipeline)
{
  return connect_to_fake_full (f, pipeline, FALSE);
}

/* Waits for an error message on @pipeline's bus (iterating the default
 * context, where the fake SFU lives). */
static gchar *
wait_for_error (GstElement *pipeline, gint seconds)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = NULL;
  gint64 end = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;
  gchar *debug = NULL;

  while (msg == NULL && g_get_monotonic_time () < end) {
    while (g_main_context_iteration (NULL, FALSE))
      ;
    msg = gst_bus_timed_pop_filtered (bus, 20 * GST_MSECOND, GST_MESSAGE_ERROR);
  }
  if (msg != NULL) {
    gst_message_parse_error (msg, NULL, &debug);
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  return debug;
}

/* The control: with honest fingerprints the session stands, both
 * certificates are verified, and media flows both ways. It waits for the
 * events (both verified, the first buffer on our src pads, the first RTP
 * from our publisher) within a bound generous enough for a loaded
 * machine, rather than counting buffers in a fixed window. */
GST_START_TEST (test_fake_sfu_fingerprint_ok)
{
  FakeSfu f = { 0 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;
  guint failures = 1, verified = 0;

  f.with_video = TRUE;
  f.handle_publisher = TRUE;
  fake_sfu_start (&f);
  conn = connect_to_fake_full (&f, pipeline, TRUE);
  WAIT_FOR (pipeline,
      (g_object_get (conn, "fingerprints-verified", &verified, NULL),
          verified >= 2)
          && g_atomic_int_get (&src_buffers) >= 1
          && g_atomic_int_get (&f.rtp_received) >= 1,
      45);
  g_object_get (conn, "fingerprint-failures", &failures, NULL);
  g_print ("honest fingerprints: %u verified, %d buffers on our src pads, %d "
           "RTP buffers from our publisher\n",
      verified, g_atomic_int_get (&src_buffers),
      g_atomic_int_get (&f.rtp_received));
  fail_unless_equals_int (verified, 2);
  fail_unless_equals_int (failures, 0);
  fail_unless (g_atomic_int_get (&src_buffers) >= 1);
  fail_unless (g_atomic_int_get (&f.rtp_received) >= 1);
  fail_unless_equals_int (
      lk_connection_get_state (conn), LK_CONNECTION_STATE_CONNECTED);
  lkt_stop_pipeline (pipeline);
  fake_sfu_stop (&f);
}

GST_END_TEST;

/* A forged fingerprint in the subscriber offer, which carries media: DTLS
 * completes (webrtcbin 1.22 accepts any peer certificate), our check
 * refuses the session, and not one buffer reaches a src pad. */
GST_START_TEST (test_fake_sfu_fingerprint_mismatch)
{
  FakeSfu f = { 0 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;
  gchar *debug;
  guint failures = 0, verified = 0;

  f.forge_fingerprint = TRUE;
  f.with_video = TRUE;
  fake_sfu_start (&f);
  conn = connect_to_fake (&f, pipeline);
  debug = wait_for_error (pipeline, 15);
  fail_unless (debug != NULL, "the forged fingerprint went unnoticed");
  g_print ("forged fingerprint: %s\n", debug);
  fail_unless (strstr (debug, "fingerprint") != NULL, "%s", debug);
  /* media keeps arriving at the (closed) transport for a while */
  WAIT_FOR (pipeline, FALSE, 1);
  g_object_get (conn, "fingerprint-failures", &failures,
      "fingerprints-verified", &verified, NULL);
  fail_unless_equals_int (failures, 1);
  fail_unless_equals_int (verified, 0);
  fail_unless_equals_int (g_atomic_int_get (&src_buffers), 0);
  fail_unless_equals_int (
      lk_connection_get_state (conn), LK_CONNECTION_STATE_FAILED);
  g_free (debug);
  lkt_stop_pipeline (pipeline);
  fake_sfu_stop (&f);
}

GST_END_TEST;

/* A forged fingerprint in the answer to our publisher: the session is
 * refused and no RTP leaves our publisher. */
GST_START_TEST (test_fake_sfu_pub_fingerprint_mismatch)
{
  FakeSfu f = { 0 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;
  gchar *debug;
  guint failures = 0;

  f.handle_publisher = TRUE;
  f.forge_pub_answer = TRUE;
  fake_sfu_start (&f);
  conn = connect_to_fake_full (&f, pipeline, TRUE);
  debug = wait_for_error (pipeline, 15);
  fail_unless (
      debug != NULL, "the forged publisher fingerprint went unnoticed");
  g_print ("forged publisher fingerprint: %s\n", debug);
  fail_unless (strstr (debug, "fingerprint") != NULL, "%s", debug);
  WAIT_FOR (pipeline, FALSE, 1);
  g_object_get (conn, "fingerprint-failures", &failures, NULL);
  fail_unless_equals_int (failures, 1);
  fail_unless (f.pub_webrtc != NULL, "the publisher never offered");
  fail_unless_equals_int (g_atomic_int_get (&f.rtp_received), 0);
  fail_unless_equals_int (
      lk_connection_get_state (conn), LK_CONNECTION_STATE_FAILED);
  g_free (debug);
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

static gint participants_added;

static void
count_participant (
    LkConnection *c, const gchar *identity, const gchar *sid, gpointer data)
{
  g_atomic_int_inc (&participants_added);
}

static void
watch_new_connection (
    GstBin *pipeline, GstBin *bin, GstElement *element, gpointer data)
{
  if (LK_IS_CONNECTION (element))
    g_signal_connect (
        element, "participant-added", G_CALLBACK (count_participant), NULL);
}

/* A hostile SFU floods us: candidates for a transport that never takes
 * them, more participants than a call has. Both are bounded and counted as
 * dropped; the session goes on. */
GST_START_TEST (test_fake_sfu_flood_bounded)
{
  FakeSfu f = { 0 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;
  guint dropped = 0;

  f.no_media = TRUE;
  f.flood = TRUE;
  g_atomic_int_set (&participants_added, 0);
  fake_sfu_start (&f);
  /* count from the start: connect the signal before joining */
  g_signal_connect (
      pipeline, "deep-element-added", G_CALLBACK (watch_new_connection), NULL);
  conn = connect_to_fake (&f, pipeline);
  WAIT_FOR (pipeline,
      (g_object_get (conn, "dropped-messages", &dropped, NULL),
          dropped >= 72 + 88),
      10);
  g_print ("flood: %u messages dropped, %d participants kept\n", dropped,
      g_atomic_int_get (&participants_added));
  /* 200 - 128 queued candidates, 600 - 512 participants */
  fail_unless_equals_int (dropped, 72 + 88);
  fail_unless_equals_int (g_atomic_int_get (&participants_added), 512);
  fail_unless_equals_int (
      lk_connection_get_state (conn), LK_CONNECTION_STATE_CONNECTED);
  lkt_stop_pipeline (pipeline);
  fake_sfu_stop (&f);
}

GST_END_TEST;

/* The server's refresh token has expired by the time of a rejoin (an
 * outage longer than its lifetime): the rejoin drops it and joins with the
 * locally minted token instead of failing on 401. */
GST_START_TEST (test_fake_sfu_expired_refresh_token)
{
  FakeSfu f = { 0 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;

  f.no_media = TRUE;
  f.refresh_token = "expired.refresh.token";
  fake_sfu_start (&f);
  conn = connect_to_fake (&f, pipeline);
  g_object_set (conn, "reconnect", TRUE, NULL);
  WAIT_FOR (pipeline, f.connections >= 2, 10);
  WAIT_FOR (pipeline,
      lk_connection_get_state (conn) == LK_CONNECTION_STATE_CONNECTED, 5);
  g_print ("expired refresh token: %d join(s) refused with it, %d with the "
           "minted token accepted\n",
      f.refresh_refused, f.minted_accepted);
  fail_unless_equals_int (f.connections, 2);
  fail_unless_equals_int (f.refresh_refused, 1);
  fail_unless_equals_int (f.minted_accepted, 2);
  fail_unless_equals_int (
      lk_connection_get_state (conn), LK_CONNECTION_STATE_CONNECTED);
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
  tcase_add_test (tc, test_fake_sfu_pub_fingerprint_mismatch);
  tcase_add_test (tc, test_fake_sfu_malformed_messages);
  tcase_add_test (tc, test_fake_sfu_ping_timeout);
  tcase_add_test (tc, test_fake_sfu_expired_refresh_token);
  tcase_add_test (tc, test_fake_sfu_flood_bounded);
  tcase_add_test (tc, test_token_legacy_fallback);
  return s;
}

GST_CHECK_MAIN (lkfakesfu);
