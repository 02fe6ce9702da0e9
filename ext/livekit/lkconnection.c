/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * LkConnection: one participant in one LiveKit room.
 *
 * Signalling: WebSocket GET <url>/rtc with binary protobuf (lkproto.proto).
 * We announce signalling protocol version 3 (property "protocol"): with
 * v > 2 the subscriber PeerConnection is primary (the server creates its
 * data channels and offers at once), and with v <= 3 the server never reuses
 * an inactive subscriber transceiver for a new track (transceiver reuse is
 * gated on v > 3). webrtcbin 1.22 rejects the direction change such a reuse
 * makes ("transceiver direction changes are not implemented", seen with
 * protocol 16 against livekit-server 1.13.5 when a publisher leaves and
 * another joins), so version 3 keeps every new remote track on a fresh
 * m-line. Should a server reuse anyway, the failed set-remote-description
 * ends the session and the rejoin recovers.
 *
 * Media: two webrtcbins, "publisher" (we offer, trickle target PUBLISHER)
 * and "subscriber" (the server offers, trickle target SUBSCRIBER). webrtcbin
 * 1.22 has no ICE restart, so any failure (WebSocket closed, ping timeout,
 * ICE failed, server leave) is handled by a full rejoin with back-off: both
 * webrtcbins are replaced, local tracks are republished, and the bin's pads
 * are re-targeted so the application never relinks.
 *
 * Threads: each connection runs its signalling on a GMainContext of its own
 * thread; webrtcbin callbacks are marshalled there. Signals are emitted
 * from that thread.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "lkconnection.h"
#include "lksdp.h"
#include "lktoken.h"

#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <libsoup/soup.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (lk_connection_debug);
#define GST_CAT_DEFAULT lk_connection_debug

#define LK_DEFAULT_PROTOCOL 3
#define LK_DEFAULT_LATENCY 200
#define LK_DEFAULT_GRACE_MS 10000
#define LK_JOIN_TIMEOUT_S 10
#define LK_BACKOFF_MIN_MS 250
#define LK_BACKOFF_MAX_MS 30000
#define LK_PUBLISH_TIMEOUT_S 10
/* Bounds against a hostile or broken SFU (we join SFUs other members name):
 * beyond them, data is dropped (and counted) or the session is rejoined. */
#define LK_MAX_PARTICIPANTS 512
#define LK_MAX_TRACKS_PER_PARTICIPANT 32
#define LK_MAX_OUTPUTS 256
#define LK_MAX_MLINES 128
#define LK_MAX_QUEUED_CANDIDATES 128
#define LK_UNRESOLVED_PAD_TIMEOUT_MS 10000
#define LK_CLIENT_VERSION "0.1.0"

/* A reference-counted link from other threads to the connection; self is
 * cleared when the connection is disposed. */
typedef struct
{
  gint ref;
  GMutex lock;
  LkConnection *self;
  GMainContext *context;
} LkHandle;

typedef struct
{
  guint index;
  gchar *name;
  gchar *kind;
  Lkproto__TrackSource source;
  GstCaps *caps;
  guint width, height;
  gboolean encrypted;
  GstPad *ghost; /* our sink pad, persistent */
  /* per session */
  GstPad *webrtc_pad;
  gchar *cid;
  gchar *sid;
  gboolean add_sent;
  gint removed;      /* lk_connection_remove_track() (atomic: read by the
                      * upstream streaming thread) */
  gint refused;      /* the server refused to publish it (atomic) */
  gboolean pad_gone; /* its sink pad has been removed from the bin */
  gboolean muted;
} LkLocalTrack;

typedef struct
{
  gchar *sid;
  gchar *name;
  gchar *kind;
  /* "video/H264", ...: the track's mime type, then its codecs' (a
   * backup codec, e.g. VP8 beside AV1); empty while unknown */
  GStrv mimes;
  Lkproto__TrackSource source;
  gboolean encrypted;
  gboolean muted;
} LkRemoteTrack;

typedef struct
{
  gchar *sid;
  gchar *identity;
  guint version;
  gboolean stale;
  GHashTable *tracks; /* sid -> LkRemoteTrack */
} LkParticipant;

typedef struct
{
  gchar *key; /* identity \n source \n kind */
  gchar *identity;
  gchar *participant_sid;
  gchar *track_sid;
  GstPad *ghost;      /* our src pad, persistent */
  GstPad *webrtc_pad; /* current target */
  guint reap_id;
} LkRemoteOutput;

typedef struct
{
  guint mline;
  gchar *candidate;
} LkCandidate;

struct _LkConnection
{
  GstBin parent;

  /* properties (under the object lock) */
  gchar *url;
  gchar *token;
  gchar *api_key;
  gchar *api_secret;
  gchar *identity;
  gchar *participant_name;
  gchar *room;
  gint protocol;
  gchar **ice_servers;
  gboolean use_server_ice_servers;
  gchar **local_addresses;
  guint latency;
  gboolean reconnect;
  guint grace_ms;

  /* statistics (atomic) */
  gint reconnects;
  gint fingerprint_failures;
  gint fingerprints_verified;
  gint dropped_messages;

  LkHandle *handle;
  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;

  /* Everything below belongs to the connection thread, except the tracks
   * and outputs arrays, which are guarded by tracks_lock. */
  GMutex tracks_lock;
  GPtrArray *local_tracks; /* LkLocalTrack */
  GHashTable *outputs;     /* key -> LkRemoteOutput */
  guint next_src_pad;

  LkConnectionState state;
  gboolean wanted; /* connect() called, disconnect() not */
  guint attempt;
  guint reconnect_id;
  SoupSession *session;
  gchar *refresh_token;

  /* per session */
  GCancellable *cancellable;
  SoupWebsocketConnection *ws;
  GstElement *pub;
  GstElement *sub;
  gchar *participant_sid;
  GHashTable *participants;    /* sid -> LkParticipant */
  GHashTable *mid_to_track;    /* subscriber mid -> track sid */
  GPtrArray *unresolved_pads;  /* subscriber src pads awaiting a track */
  GPtrArray *pub_remote_cands; /* LkCandidate, before the answer */
  GPtrArray *sub_remote_cands; /* LkCandidate, before the offer */
  GPtrArray *pub_local_cands;  /* LkCandidate, before our offer */
  gboolean pub_remote_set, sub_remote_set, pub_offer_sent;
  gboolean sub_verified; /* remote DTLS certificate checked */
  gint pub_verified;     /* same for the publisher (atomic: read by the
                          * upstream streaming threads) */
  gboolean pub_negotiating, pub_renegotiate, pub_offer_needed;
  GstWebRTCSessionDescription *pending_pub_offer;
  Lkproto__SessionDescription *pending_sub_offer;
  gboolean sub_negotiating;
  guint sub_offer_id;
  guint pub_offer_id;
  GPtrArray *pub_fps, *sub_fps; /* LkSdpFingerprint of the remote SDP */
  GPtrArray *watched_transports;
  GPtrArray *data_channels;
  gint ping_interval, ping_timeout;
  gint64 last_rx_us;
  gint64 rtt_ms;
  guint ping_id;
  guint join_timeout_id;
  guint caps_wait_id;
  guint publish_timeout_id;
  gboolean join_with_refresh_token; /* this join used refresh_token */
};

G_DEFINE_TYPE (LkConnection, lk_connection, GST_TYPE_BIN);

enum
{
  PROP_0,
  PROP_URL,
  PROP_TOKEN,
  PROP_API_KEY,
  PROP_API_SECRET,
  PROP_IDENTITY,
  PROP_PARTICIPANT_NAME,
  PROP_ROOM,
  PROP_PROTOCOL,
  PROP_ICE_SERVERS,
  PROP_USE_SERVER_ICE_SERVERS,
  PROP_LOCAL_ADDRESSES,
  PROP_LATENCY,
  PROP_RECONNECT,
  PROP_TRACK_GRACE_MS,
  PROP_STATE,
  PROP_PARTICIPANT_SID,
  PROP_RECONNECTS,
  PROP_FINGERPRINT_FAILURES,
  PROP_DROPPED_MESSAGES,
  PROP_FINGERPRINTS_VERIFIED,
};

enum
{
  SIGNAL_PARTICIPANT_ADDED,
  SIGNAL_PARTICIPANT_REMOVED,
  SIGNAL_TRACK_ADDED,
  SIGNAL_TRACK_REMOVED,
  SIGNAL_TRACK_PUBLISHED,
  SIGNAL_TRACK_UNPUBLISHED,
  SIGNAL_TRACK_MUTED,
  SIGNAL_TRACK_REFUSED,
  SIGNAL_LOCAL_TRACK_MUTED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

GType
lk_connection_state_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = { { LK_CONNECTION_STATE_DISCONNECTED,
                                           "Disconnected", "disconnected" },
    { LK_CONNECTION_STATE_CONNECTING, "Connecting", "connecting" },
    { LK_CONNECTION_STATE_CONNECTED, "Connected", "connected" },
    { LK_CONNECTION_STATE_RECONNECTING, "Reconnecting", "reconnecting" },
    { LK_CONNECTION_STATE_FAILED, "Failed", "failed" }, { 0, NULL, NULL } };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("LkConnectionState", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* ------------------------------------------------------------------ */
/* small helpers */

static LkHandle *
lk_handle_ref (LkHandle *h)
{
  g_atomic_int_inc (&h->ref);
  return h;
}

static void
lk_handle_unref (gpointer data)
{
  LkHandle *h = data;

  if (g_atomic_int_dec_and_test (&h->ref)) {
    g_mutex_clear (&h->lock);
    g_main_context_unref (h->context);
    g_free (h);
  }
}

static void
lk_handle_closure_unref (gpointer data, GClosure *closure)
{
  lk_handle_unref (data);
}

typedef void (*LkPostFunc) (LkConnection *self, gpointer data);

typedef struct
{
  LkHandle *handle;
  LkPostFunc func;
  gpointer data;
  GDestroyNotify destroy;
} LkPost;

static void
lk_post_free (gpointer data)
{
  LkPost *p = data;

  if (p->destroy && p->data)
    p->destroy (p->data);
  lk_handle_unref (p->handle);
  g_free (p);
}

static gboolean
lk_post_dispatch (gpointer data)
{
  LkPost *p = data;
  LkConnection *self;

  g_mutex_lock (&p->handle->lock);
  self = p->handle->self;
  g_mutex_unlock (&p->handle->lock);
  if (self != NULL)
    p->func (self, p->data);
  return G_SOURCE_REMOVE;
}

/* Runs @func on the connection thread, from any thread. */
static void
lk_post (
    LkHandle *handle, LkPostFunc func, gpointer data, GDestroyNotify destroy)
{
  LkPost *p = g_new0 (LkPost, 1);
  GSource *source;

  p->handle = lk_handle_ref (handle);
  p->func = func;
  p->data = data;
  p->destroy = destroy;
  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, lk_post_dispatch, p, lk_post_free);
  g_source_attach (source, handle->context);
  g_source_unref (source);
}

/* Runs @func on the connection thread after @ms. */
static void
lk_post_delayed (LkHandle *handle, guint ms, LkPostFunc func, gpointer data,
    GDestroyNotify destroy)
{
  LkPost *p = g_new0 (LkPost, 1);
  GSource *source;

  p->handle = lk_handle_ref (handle);
  p->func = func;
  p->data = data;
  p->destroy = destroy;
  source = g_timeout_source_new (ms);
  g_source_set_callback (source, lk_post_dispatch, p, lk_post_free);
  g_source_attach (source, handle->context);
  g_source_unref (source);
}

static guint
lk_timeout_add (LkConnection *self, guint ms, GSourceFunc func)
{
  GSource *source = g_timeout_source_new (ms);
  guint id;

  g_source_set_callback (source, func, self, NULL);
  id = g_source_attach (source, self->context);
  g_source_unref (source);
  return id;
}

static void
lk_source_clear (LkConnection *self, guint *id)
{
  if (*id != 0) {
    GSource *s = g_main_context_find_source_by_id (self->context, *id);
    if (s != NULL)
      g_source_destroy (s);
    *id = 0;
  }
}

static void
lk_sd_free (gpointer data)
{
  lkproto__session_description__free_unpacked (data, NULL);
}

static void
lk_candidate_free (gpointer data)
{
  LkCandidate *c = data;

  g_free (c->candidate);
  g_free (c);
}

static void
lk_remote_track_free (gpointer data)
{
  LkRemoteTrack *t = data;

  g_free (t->sid);
  g_free (t->name);
  g_free (t->kind);
  g_strfreev (t->mimes);
  g_free (t);
}

static void
lk_participant_free (gpointer data)
{
  LkParticipant *p = data;

  g_free (p->sid);
  g_free (p->identity);
  g_hash_table_unref (p->tracks);
  g_free (p);
}

static void
lk_local_track_free (gpointer data)
{
  LkLocalTrack *t = data;

  g_free (t->name);
  g_free (t->kind);
  gst_clear_caps (&t->caps);
  gst_clear_object (&t->ghost);
  gst_clear_object (&t->webrtc_pad);
  g_free (t->cid);
  g_free (t->sid);
  g_free (t);
}

static void
lk_output_free (gpointer data)
{
  LkRemoteOutput *o = data;

  g_free (o->key);
  g_free (o->identity);
  g_free (o->participant_sid);
  g_free (o->track_sid);
  gst_clear_object (&o->ghost);
  gst_clear_object (&o->webrtc_pad);
  g_free (o);
}

static void
lk_set_state (LkConnection *self, LkConnectionState state)
{
  if (self->state == state)
    return;
  GST_INFO_OBJECT (self, "state %d -> %d", self->state, state);
  self->state = state;
  g_object_notify (G_OBJECT (self), "state");
}

/* ------------------------------------------------------------------ */
/* signalling output */

static void
lk_send (LkConnection *self, const Lkproto__SignalRequest *request)
{
  g_autoptr (GBytes) bytes = NULL;
  gsize size;
  gconstpointer data;

  if (self->ws == NULL
      || soup_websocket_connection_get_state (self->ws)
             != SOUP_WEBSOCKET_STATE_OPEN) {
    GST_DEBUG_OBJECT (
        self, "not sending request %d: not connected", request->message_case);
    return;
  }
  bytes = lk_proto_pack_request (request);
  data = g_bytes_get_data (bytes, &size);
  soup_websocket_connection_send_binary (self->ws, data, size);
}

static void
lk_send_sdp (LkConnection *self, gboolean offer, const gchar *sdp, guint id)
{
  Lkproto__SignalRequest req = LKPROTO__SIGNAL_REQUEST__INIT;
  Lkproto__SessionDescription desc = LKPROTO__SESSION_DESCRIPTION__INIT;

  desc.type = (gchar *)(offer ? "offer" : "answer");
  desc.sdp = (gchar *)sdp;
  desc.id = id;
  if (offer) {
    req.message_case = LKPROTO__SIGNAL_REQUEST__MESSAGE_OFFER;
    req.offer = &desc;
  } else {
    req.message_case = LKPROTO__SIGNAL_REQUEST__MESSAGE_ANSWER;
    req.answer = &desc;
  }
  lk_send (self, &req);
}

static void
lk_send_trickle (LkConnection *self, Lkproto__SignalTarget target, guint mline,
    const gchar *candidate, const gchar *mid)
{
  Lkproto__SignalRequest req = LKPROTO__SIGNAL_REQUEST__INIT;
  Lkproto__TrickleRequest trickle = LKPROTO__TRICKLE_REQUEST__INIT;
  g_autofree gchar *init
      = lk_sdp_candidate_init_to_json (candidate, mid, mline);

  trickle.candidateinit = init;
  trickle.target = target;
  req.message_case = LKPROTO__SIGNAL_REQUEST__MESSAGE_TRICKLE;
  req.trickle = &trickle;
  lk_send (self, &req);
}

static void
lk_send_leave (LkConnection *self)
{
  Lkproto__SignalRequest req = LKPROTO__SIGNAL_REQUEST__INIT;
  Lkproto__LeaveRequest leave = LKPROTO__LEAVE_REQUEST__INIT;

  leave.reason = 1; /* CLIENT_INITIATED */
  leave.action = LKPROTO__LEAVE_ACTION__DISCONNECT;
  req.message_case = LKPROTO__SIGNAL_REQUEST__MESSAGE_LEAVE;
  req.leave = &leave;
  lk_send (self, &req);
}

/* ------------------------------------------------------------------ */
/* session teardown and reconnect */

static void lk_start_join (LkConnection *self, gpointer data);
static void lk_reap_output_later (LkConnection *self, LkRemoteOutput *o);

static void
lk_remove_webrtcbin (LkConnection *self, GstElement **elem)
{
  GstElement *e = *elem;

  if (e == NULL)
    return;
  *elem = NULL;
  g_signal_handlers_disconnect_matched (
      e, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, self->handle);
  gst_element_set_locked_state (e, TRUE);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_bin_remove (GST_BIN (self), e);
  gst_object_unref (e);
}

static void
lk_teardown_session (LkConnection *self)
{
  guint i;
  GHashTableIter iter;
  gpointer value;

  lk_source_clear (self, &self->ping_id);
  lk_source_clear (self, &self->join_timeout_id);
  lk_source_clear (self, &self->caps_wait_id);
  lk_source_clear (self, &self->publish_timeout_id);
  if (self->cancellable) {
    g_cancellable_cancel (self->cancellable);
    g_clear_object (&self->cancellable);
  }
  if (self->ws) {
    g_signal_handlers_disconnect_matched (
        self->ws, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, self);
    if (soup_websocket_connection_get_state (self->ws)
        == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_close (
          self->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
    g_clear_object (&self->ws);
  }

  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);

    gst_ghost_pad_set_target (GST_GHOST_PAD (t->ghost), NULL);
    gst_clear_object (&t->webrtc_pad);
    g_clear_pointer (&t->cid, g_free);
    g_clear_pointer (&t->sid, g_free);
    t->add_sent = FALSE;
  }
  g_hash_table_iter_init (&iter, self->outputs);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    LkRemoteOutput *o = value;

    gst_ghost_pad_set_target (GST_GHOST_PAD (o->ghost), NULL);
    gst_clear_object (&o->webrtc_pad);
    lk_reap_output_later (self, o);
  }
  g_mutex_unlock (&self->tracks_lock);

  g_ptr_array_set_size (self->data_channels, 0);
  for (i = 0; i < self->watched_transports->len; i++) {
    GObject *transport = g_ptr_array_index (self->watched_transports, i);

    g_signal_handlers_disconnect_matched (
        transport, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, self->handle);
    g_object_set_data (transport, "lk-webrtcbin", NULL);
  }
  g_ptr_array_set_size (self->watched_transports, 0);
  lk_remove_webrtcbin (self, &self->pub);
  lk_remove_webrtcbin (self, &self->sub);

  g_hash_table_remove_all (self->mid_to_track);
  g_ptr_array_set_size (self->unresolved_pads, 0);
  g_ptr_array_set_size (self->pub_remote_cands, 0);
  g_ptr_array_set_size (self->sub_remote_cands, 0);
  g_ptr_array_set_size (self->pub_local_cands, 0);
  self->pub_remote_set = self->sub_remote_set = self->pub_offer_sent = FALSE;
  self->sub_verified = FALSE;
  g_atomic_int_set (&self->pub_verified, FALSE);
  self->pub_negotiating = self->pub_renegotiate = FALSE;
  self->pub_offer_needed = FALSE;
  self->sub_negotiating = FALSE;
  g_clear_pointer (
      &self->pending_pub_offer, gst_webrtc_session_description_free);
  g_clear_pointer (&self->pending_sub_offer, lk_sd_free);
  g_clear_pointer (&self->pub_fps, g_ptr_array_unref);
  g_clear_pointer (&self->sub_fps, g_ptr_array_unref);
  GST_OBJECT_LOCK (self);
  g_clear_pointer (&self->participant_sid, g_free);
  GST_OBJECT_UNLOCK (self);
}

static gboolean
lk_reconnect_timeout (gpointer data)
{
  LkConnection *self = data;

  self->reconnect_id = 0;
  if (self->wanted)
    lk_start_join (self, NULL);
  return G_SOURCE_REMOVE;
}

/* A failure of the session: full rejoin with back-off, or give up. */
static void
lk_fail_session (LkConnection *self, gboolean fatal, const gchar *reason)
{
  guint delay;

  GST_WARNING_OBJECT (self, "session failed: %s", reason);
  lk_teardown_session (self);
  if (fatal || !self->reconnect || !self->wanted) {
    lk_set_state (self,
        fatal ? LK_CONNECTION_STATE_FAILED : LK_CONNECTION_STATE_DISCONNECTED);
    if (fatal)
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("LiveKit connection failed"),
          ("%s", reason));
    return;
  }
  /* exponential, capped, with +-20 % jitter so that many clients of one
   * restarted SFU do not rejoin in lockstep */
  delay = LK_BACKOFF_MIN_MS << MIN (self->attempt, 8);
  delay = MIN (delay, LK_BACKOFF_MAX_MS);
  delay = delay * 4 / 5 + g_random_int_range (0, delay * 2 / 5 + 1);
  self->attempt++;
  g_atomic_int_inc (&self->reconnects);
  lk_set_state (self, LK_CONNECTION_STATE_RECONNECTING);
  GST_INFO_OBJECT (
      self, "rejoining in %u ms (attempt %u)", delay, self->attempt);
  lk_source_clear (self, &self->reconnect_id);
  self->reconnect_id = lk_timeout_add (self, delay, lk_reconnect_timeout);
}

/* ------------------------------------------------------------------ */
/* removing our pads */

static void
lk_deactivate_and_remove_pad (GstElement *element, gpointer data)
{
  GstPad *pad = data;

  gst_pad_set_active (pad, FALSE);
  if (GST_OBJECT_PARENT (pad) == GST_OBJECT (element))
    gst_element_remove_pad (element, pad);
}

/* Marks @pad flushing (data and serialized events entering it from now
 * on return at once, without going downstream) and tells whether no
 * streaming thread is inside it. Flushing first closes the window between
 * the check and the deactivation: a thread that enters after the check
 * leaves at once instead of being held downstream with the stream lock. */
static gboolean
lk_pad_flush_and_is_idle (GstPad *pad)
{
  GST_OBJECT_LOCK (pad);
  GST_PAD_SET_FLUSHING (pad);
  GST_OBJECT_UNLOCK (pad);
  if (!GST_PAD_STREAM_TRYLOCK (pad))
    return FALSE;
  GST_PAD_STREAM_UNLOCK (pad);
  return TRUE;
}

/* Deactivates and removes one of our ghost pads, never blocking the
 * connection thread. Deactivating a pad waits for its stream lock, which a
 * streaming thread holds while it is inside the pad; such a thread can be
 * held downstream (a webrtcbin sink pad blocks data until its m-line is
 * negotiated; a sink blocks in PAUSED) until the webrtcbins are flushed,
 * and that happens on this very thread (lk_teardown_session() from
 * lk_connection_disconnect(), which PAUSED->READY waits for). Waiting here
 * deadlocked "gst-launch-1.0 -e" when a track was unpublished just before
 * the pipeline stopped. When the stream lock is taken, the pad is
 * deactivated on a thread of GStreamer's pool instead, which waits for the
 * flush. The pad is unlinked (or has no target), and it is marked flushing
 * before the check, so no thread can enter it and be held between the
 * check and the deactivation. */
static void
lk_remove_pad (LkConnection *self, GstPad *pad)
{
  GstProxyPad *internal = gst_proxy_pad_get_internal (GST_PROXY_PAD (pad));
  /* data enters a sink ghost pad itself, a src ghost pad's internal pad */
  gboolean idle = lk_pad_flush_and_is_idle (pad);

  if (internal != NULL && !lk_pad_flush_and_is_idle (GST_PAD (internal)))
    idle = FALSE;

  gst_clear_object (&internal);
  if (idle) {
    lk_deactivate_and_remove_pad (GST_ELEMENT (self), pad);
    return;
  }
  GST_DEBUG_OBJECT (self,
      "a streaming thread is inside %s: removing it off the connection "
      "thread",
      GST_PAD_NAME (pad));
  gst_element_call_async (GST_ELEMENT (self), lk_deactivate_and_remove_pad,
      gst_object_ref (pad), gst_object_unref);
}

/* ------------------------------------------------------------------ */
/* remote outputs (subscriber src pads) */

static gboolean
lk_output_reap_cb (gpointer data)
{
  LkRemoteOutput *o = data;
  LkConnection *self = LK_CONNECTION (gst_pad_get_parent_element (o->ghost));
  GstPad *ghost = NULL;
  gchar *identity = NULL, *track_sid = NULL;

  if (self == NULL)
    return G_SOURCE_REMOVE;
  g_mutex_lock (&self->tracks_lock);
  o->reap_id = 0;
  if (o->webrtc_pad == NULL) {
    ghost = gst_object_ref (o->ghost);
    identity = g_strdup (o->identity);
    track_sid = g_strdup (o->track_sid);
    g_hash_table_remove (self->outputs, o->key);
  }
  g_mutex_unlock (&self->tracks_lock);
  if (ghost != NULL) {
    GST_INFO_OBJECT (
        self, "remote track %s of %s is gone", track_sid, identity);
    g_signal_emit (
        self, signals[SIGNAL_TRACK_REMOVED], 0, identity, track_sid, ghost);
    lk_remove_pad (self, ghost);
    gst_object_unref (ghost);
  }
  g_free (identity);
  g_free (track_sid);
  gst_object_unref (self);
  return G_SOURCE_REMOVE;
}

/* with tracks_lock */
static void
lk_reap_output_later (LkConnection *self, LkRemoteOutput *o)
{
  GSource *source;

  if (o->reap_id != 0)
    return;
  source = g_timeout_source_new (self->grace_ms);
  g_source_set_callback (source, lk_output_reap_cb, o, NULL);
  o->reap_id = g_source_attach (source, self->context);
  g_source_unref (source);
}

static GstPadProbeReturn
lk_drop_eos_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);

  /* A webrtcbin src pad ends when its transceiver goes inactive or the
   * webrtcbin is replaced; our pad lives on. */
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS)
    return GST_PAD_PROBE_DROP;
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
lk_drop_unlinked_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstPad *peer = gst_pad_get_peer (pad);
  gboolean linked = FALSE;

  if (peer != NULL) {
    if (GST_IS_PROXY_PAD (peer)) {
      GstProxyPad *ghost = gst_proxy_pad_get_internal (GST_PROXY_PAD (peer));
      if (ghost != NULL) {
        linked = gst_pad_is_linked (GST_PAD (ghost));
        gst_object_unref (ghost);
      }
    } else {
      linked = TRUE;
    }
    gst_object_unref (peer);
  }
  return linked ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
}

static void
lk_request_key_frame (GstPad *pad)
{
  GstStructure *s = gst_structure_new (
      "GstForceKeyUnit", "all-headers", G_TYPE_BOOLEAN, TRUE, NULL);

  gst_pad_send_event (pad, gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM, s));
}

static void
lk_unblock_pad (GstPad *pad)
{
  gulong id
      = GPOINTER_TO_UINT (g_object_steal_data (G_OBJECT (pad), "lk-block-id"));

  if (id != 0)
    gst_pad_remove_probe (pad, id);
}

static LkRemoteTrack *
lk_find_remote_track (
    LkConnection *self, const gchar *track_sid, LkParticipant **participant)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->participants);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    LkParticipant *p = value;
    LkRemoteTrack *t = g_hash_table_lookup (p->tracks, track_sid);

    if (t != NULL) {
      *participant = p;
      return t;
    }
  }
  return NULL;
}

#define LK_MAX_SAME_TRACKS 16

/* with tracks_lock. The stable key of a remote track's output pad:
 * identity, source, kind and an ordinal, so that a participant's second
 * camera gets a pad of its own while a track that comes back after a
 * rejoin (with a new sid) finds its pad again. NULL beyond
 * LK_MAX_SAME_TRACKS such tracks. */
static gchar *
lk_output_key (LkConnection *self, const gchar *identity,
    const LkRemoteTrack *t, const gchar *track_sid)
{
  gchar *free_key = NULL;
  guint k;

  for (k = 0; k < LK_MAX_SAME_TRACKS; k++) {
    gchar *key = g_strdup_printf ("%s\n%s\n%s\n%u", identity,
        lk_proto_source_to_string (t->source), t->kind, k);
    LkRemoteOutput *o = g_hash_table_lookup (self->outputs, key);

    if (o != NULL && g_strcmp0 (o->track_sid, track_sid) == 0) {
      g_free (free_key);
      return key; /* this very track */
    }
    if (free_key == NULL && (o == NULL || o->webrtc_pad == NULL)) {
      free_key = key; /* new, or waiting for its track to come back */
      continue;
    }
    g_free (key);
  }
  return free_key;
}

/* Attaches a subscriber webrtcbin src pad to its stable output pad.
 * Returns FALSE when the track is not known yet. */
static gboolean
lk_attach_remote_pad (LkConnection *self, GstPad *pad)
{
  GstWebRTCRTPTransceiver *trans = NULL;
  g_autofree gchar *mid = NULL;
  const gchar *track_sid;
  LkParticipant *p = NULL;
  LkRemoteTrack *t;
  LkRemoteOutput *o;
  g_autofree gchar *key = NULL;
  gboolean created = FALSE;
  GstPad *ghost;

  g_object_get (pad, "transceiver", &trans, NULL);
  if (trans != NULL) {
    g_object_get (trans, "mid", &mid, NULL);
    gst_object_unref (trans);
  }
  track_sid = mid ? g_hash_table_lookup (self->mid_to_track, mid) : NULL;
  if (track_sid == NULL) {
    GST_DEBUG_OBJECT (
        self, "pad %" GST_PTR_FORMAT " (mid %s): no track yet", pad, mid);
    return FALSE;
  }
  t = lk_find_remote_track (self, track_sid, &p);
  if (t == NULL) {
    GST_DEBUG_OBJECT (self, "track %s: no participant yet", track_sid);
    return FALSE;
  }

  g_mutex_lock (&self->tracks_lock);
  key = lk_output_key (self, p->identity, t, track_sid);
  if (key == NULL) {
    g_mutex_unlock (&self->tracks_lock);
    g_atomic_int_inc (&self->dropped_messages);
    GST_WARNING_OBJECT (
        self, "too many tracks of %s, ignoring %s", p->identity, track_sid);
    lk_unblock_pad (pad); /* its data is dropped: never linked */
    return TRUE;
  }
  o = g_hash_table_lookup (self->outputs, key);
  if (o == NULL && g_hash_table_size (self->outputs) >= LK_MAX_OUTPUTS) {
    g_mutex_unlock (&self->tracks_lock);
    g_atomic_int_inc (&self->dropped_messages);
    GST_WARNING_OBJECT (self, "%u remote pads already, ignoring track %s",
        LK_MAX_OUTPUTS, track_sid);
    lk_unblock_pad (pad); /* its data is dropped: never linked */
    return TRUE;
  }
  if (o == NULL) {
    g_autofree gchar *name = g_strdup_printf ("src_%u", self->next_src_pad++);

    o = g_new0 (LkRemoteOutput, 1);
    o->key = g_strdup (key);
    o->identity = g_strdup (p->identity);
    o->ghost
        = gst_object_ref_sink (gst_ghost_pad_new_no_target (name, GST_PAD_SRC));
    gst_pad_add_probe (o->ghost, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
        lk_drop_eos_probe, NULL, NULL);
    g_hash_table_insert (self->outputs, o->key, o);
    created = TRUE;
  }
  if (o->reap_id != 0)
    lk_source_clear (self, &o->reap_id);
  g_free (o->participant_sid);
  o->participant_sid = g_strdup (p->sid);
  g_free (o->track_sid);
  o->track_sid = g_strdup (track_sid);
  gst_object_replace ((GstObject **)&o->webrtc_pad, GST_OBJECT (pad));
  ghost = gst_object_ref (o->ghost);
  g_mutex_unlock (&self->tracks_lock);

  gst_ghost_pad_set_target (GST_GHOST_PAD (ghost), pad);
  if (created) {
    gst_pad_set_active (ghost, TRUE);
    gst_element_add_pad (GST_ELEMENT (self), ghost);
    GST_INFO_OBJECT (self, "new remote track %s (%s %s) of %s on %s", track_sid,
        lk_proto_source_to_string (t->source), t->kind, p->identity,
        GST_PAD_NAME (ghost));
    g_signal_emit (self, signals[SIGNAL_TRACK_ADDED], 0, p->identity, p->sid,
        track_sid, lk_proto_source_to_string (t->source), t->kind, t->encrypted,
        ghost);
  } else {
    GST_INFO_OBJECT (self, "remote track %s of %s resumes on %s", track_sid,
        p->identity, GST_PAD_NAME (ghost));
  }
  gst_object_unref (ghost);
  /* Media flows once the application has linked the pad and the peer's
   * DTLS certificate has been checked against the SDP. */
  if (self->sub_verified)
    lk_unblock_pad (pad);
  /* On a re-targeted pad the decoder needs a key frame of the new stream:
   * ask the publisher (rtpsession turns this into a PLI). */
  if (!created && g_str_equal (t->kind, "video"))
    lk_request_key_frame (pad);
  return TRUE;
}

static void
lk_resolve_pending_pads (LkConnection *self)
{
  guint i = 0;

  while (i < self->unresolved_pads->len) {
    GstPad *pad = g_ptr_array_index (self->unresolved_pads, i);

    if (lk_attach_remote_pad (self, pad))
      g_ptr_array_remove_index (self->unresolved_pads, i);
    else
      i++;
  }
}

typedef struct
{
  GstElement *elem;
  GstPad *pad;
} LkPadEvent;

static void
lk_pad_event_free (gpointer data)
{
  LkPadEvent *e = data;

  gst_object_unref (e->elem);
  gst_object_unref (e->pad);
  g_free (e);
}

/* A subscriber pad whose track is still unknown after a while: let its
 * data go (dropped, as the pad is unlinked) instead of holding a streaming
 * thread forever; it is still attached should the track turn up. */
static void
lk_unresolved_pad_timeout (LkConnection *self, gpointer data)
{
  LkPadEvent *e = data;

  if (e->elem != self->sub
      || !g_ptr_array_find (self->unresolved_pads, e->pad, NULL))
    return;
  GST_WARNING_OBJECT (
      self, "no track for pad %s: dropping its data", GST_PAD_NAME (e->pad));
  lk_unblock_pad (e->pad);
}

static void
lk_on_remote_pad (LkConnection *self, gpointer data)
{
  LkPadEvent *e = data;
  LkPadEvent *later;

  if (e->elem != self->sub)
    return;
  if (lk_attach_remote_pad (self, e->pad))
    return;
  g_ptr_array_add (self->unresolved_pads, gst_object_ref (e->pad));
  later = g_new0 (LkPadEvent, 1);
  later->elem = gst_object_ref (e->elem);
  later->pad = gst_object_ref (e->pad);
  lk_post_delayed (self->handle, LK_UNRESOLVED_PAD_TIMEOUT_MS,
      lk_unresolved_pad_timeout, later, lk_pad_event_free);
}

static void
lk_on_remote_pad_removed (LkConnection *self, gpointer data)
{
  LkPadEvent *e = data;
  GHashTableIter iter;
  gpointer value;

  g_ptr_array_remove (self->unresolved_pads, e->pad);
  g_mutex_lock (&self->tracks_lock);
  g_hash_table_iter_init (&iter, self->outputs);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    LkRemoteOutput *o = value;

    if (o->webrtc_pad == e->pad) {
      gst_clear_object (&o->webrtc_pad);
      lk_reap_output_later (self, o);
    }
  }
  g_mutex_unlock (&self->tracks_lock);
}

static void
lk_sub_pad_added (GstElement *webrtc, GstPad *pad, LkHandle *handle)
{
  LkPadEvent *e;
  gulong block_id;

  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
    return;
  /* Hold the first packets (the key frame the SFU asked for) until the
   * application has linked our pad in "track-added"; after that, drop
   * whatever finds our pad unlinked rather than failing upstream. */
  block_id = gst_pad_add_probe (pad,
      GST_PAD_PROBE_TYPE_BLOCK | GST_PAD_PROBE_TYPE_BUFFER
          | GST_PAD_PROBE_TYPE_BUFFER_LIST,
      NULL, NULL, NULL);
  g_object_set_data (
      G_OBJECT (pad), "lk-block-id", GUINT_TO_POINTER (block_id));
  gst_pad_add_probe (pad,
      GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
      lk_drop_unlinked_probe, NULL, NULL);
  e = g_new0 (LkPadEvent, 1);
  e->elem = gst_object_ref (webrtc);
  e->pad = gst_object_ref (pad);
  lk_post (handle, lk_on_remote_pad, e, lk_pad_event_free);
}

static void
lk_sub_pad_removed (GstElement *webrtc, GstPad *pad, LkHandle *handle)
{
  LkPadEvent *e;

  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
    return;
  e = g_new0 (LkPadEvent, 1);
  e->elem = gst_object_ref (webrtc);
  e->pad = gst_object_ref (pad);
  lk_post (handle, lk_on_remote_pad_removed, e, lk_pad_event_free);
}

/* ------------------------------------------------------------------ */
/* participants */

/* The codecs of @ti: its mime type, then its codecs' mime types (no empty
 * ones, no repeats). */
static GStrv
lk_track_mime_types (const Lkproto__TrackInfo *ti)
{
  GStrvBuilder *builder = g_strv_builder_new ();
  GPtrArray *seen = g_ptr_array_new ();
  GStrv mimes;
  gsize i;

  for (i = 0; i <= ti->n_codecs; i++) {
    const gchar *mime = i == 0              ? ti->mime_type
                        : ti->codecs[i - 1] ? ti->codecs[i - 1]->mime_type
                                            : NULL;

    if (mime == NULL || *mime == '\0'
        || g_ptr_array_find_with_equal_func (
            seen, mime, (GEqualFunc)g_str_equal, NULL))
      continue;
    g_ptr_array_add (seen, (gpointer)mime);
    g_strv_builder_add (builder, mime);
  }
  mimes = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  g_ptr_array_unref (seen);
  return mimes;
}

static LkParticipant *
lk_participant_upsert (LkConnection *self, const Lkproto__ParticipantInfo *info,
    gboolean *is_new, GPtrArray *removed_tracks, GPtrArray *muted_changed)
{
  LkParticipant *p = g_hash_table_lookup (self->participants, info->sid);
  GHashTable *old_tracks = NULL;
  gsize i;

  *is_new = (p == NULL);
  if (p == NULL
      && g_hash_table_size (self->participants) >= LK_MAX_PARTICIPANTS)
    return NULL;
  if (p == NULL) {
    p = g_new0 (LkParticipant, 1);
    p->sid = g_strdup (info->sid);
    p->tracks = g_hash_table_new_full (
        g_str_hash, g_str_equal, NULL, lk_remote_track_free);
    g_hash_table_insert (self->participants, p->sid, p);
  } else if (info->version != 0 && info->version < p->version && !p->stale) {
    return p; /* older snapshot */
  }
  p->stale = FALSE;
  p->version = info->version;
  g_free (p->identity);
  p->identity = g_strdup (info->identity ? info->identity : "");

  old_tracks = p->tracks;
  p->tracks = g_hash_table_new_full (
      g_str_hash, g_str_equal, NULL, lk_remote_track_free);
  for (i = 0; i < info->n_tracks; i++) {
    const Lkproto__TrackInfo *ti = info->tracks[i];
    LkRemoteTrack *t;

    if (ti->sid == NULL || *ti->sid == '\0'
        || (ti->type != LKPROTO__TRACK_TYPE__AUDIO
            && ti->type != LKPROTO__TRACK_TYPE__VIDEO)
        || g_hash_table_size (p->tracks) >= LK_MAX_TRACKS_PER_PARTICIPANT)
      continue;
    t = g_new0 (LkRemoteTrack, 1);
    t->sid = g_strdup (ti->sid);
    t->name = g_strdup (ti->name);
    t->kind
        = g_strdup (ti->type == LKPROTO__TRACK_TYPE__VIDEO ? "video" : "audio");
    t->mimes = lk_track_mime_types (ti);
    t->source = ti->source;
    t->encrypted = ti->encryption != LKPROTO__ENCRYPTION_TYPE__NONE;
    t->muted = ti->muted;
    {
      LkRemoteTrack *before = g_hash_table_lookup (old_tracks, t->sid);
      if (before != NULL && before->muted != t->muted && muted_changed)
        g_ptr_array_add (muted_changed, g_strdup (t->sid));
    }
    g_hash_table_insert (p->tracks, t->sid, t);
    g_hash_table_remove (old_tracks, t->sid);
  }
  if (removed_tracks != NULL) {
    GHashTableIter iter;
    gpointer key;

    g_hash_table_iter_init (&iter, old_tracks);
    while (g_hash_table_iter_next (&iter, &key, NULL))
      g_ptr_array_add (removed_tracks, g_strdup (key));
  }
  g_hash_table_unref (old_tracks);
  return p;
}

/* with tracks_lock */
static void
lk_reap_outputs_of_track (
    LkConnection *self, const gchar *track_sid, const gchar *participant_sid)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->outputs);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    LkRemoteOutput *o = value;

    if ((track_sid && g_strcmp0 (o->track_sid, track_sid) == 0)
        || (participant_sid
            && g_strcmp0 (o->participant_sid, participant_sid) == 0)) {
      gst_ghost_pad_set_target (GST_GHOST_PAD (o->ghost), NULL);
      gst_clear_object (&o->webrtc_pad);
      lk_reap_output_later (self, o);
    }
  }
}

static void
lk_participant_gone (LkConnection *self, const gchar *sid)
{
  LkParticipant *p = g_hash_table_lookup (self->participants, sid);
  g_autofree gchar *identity = NULL;
  g_autofree gchar *psid = NULL;

  if (p == NULL)
    return;
  identity = g_strdup (p->identity);
  psid = g_strdup (p->sid);
  g_hash_table_remove (self->participants, sid);
  g_mutex_lock (&self->tracks_lock);
  lk_reap_outputs_of_track (self, NULL, psid);
  g_mutex_unlock (&self->tracks_lock);
  GST_INFO_OBJECT (self, "participant %s (%s) left", identity, psid);
  g_signal_emit (self, signals[SIGNAL_PARTICIPANT_REMOVED], 0, identity, psid);
}

static void
lk_handle_participant (LkConnection *self, const Lkproto__ParticipantInfo *info)
{
  gboolean is_new = FALSE;
  LkParticipant *p;
  g_autoptr (GPtrArray) removed = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) muted_changed = g_ptr_array_new_with_free_func (g_free);
  guint i;

  if (info == NULL || info->sid == NULL || *info->sid == '\0')
    return;
  if (g_strcmp0 (info->sid, self->participant_sid) == 0)
    return;
  if (info->state == LKPROTO__PARTICIPANT_STATE__DISCONNECTED) {
    lk_participant_gone (self, info->sid);
    return;
  }
  p = lk_participant_upsert (self, info, &is_new, removed, muted_changed);
  if (p == NULL) {
    g_atomic_int_inc (&self->dropped_messages);
    GST_WARNING_OBJECT (self, "%u participants already, ignoring %s",
        LK_MAX_PARTICIPANTS, info->sid);
    return;
  }
  if (removed->len > 0) {
    g_mutex_lock (&self->tracks_lock);
    for (i = 0; i < removed->len; i++)
      lk_reap_outputs_of_track (self, g_ptr_array_index (removed, i), NULL);
    g_mutex_unlock (&self->tracks_lock);
  }
  for (i = 0; i < muted_changed->len; i++) {
    const gchar *sid = g_ptr_array_index (muted_changed, i);
    LkRemoteTrack *t = g_hash_table_lookup (p->tracks, sid);

    if (t != NULL)
      g_signal_emit (
          self, signals[SIGNAL_TRACK_MUTED], 0, p->identity, sid, t->muted);
  }
  if (is_new) {
    GST_INFO_OBJECT (self, "participant %s (%s) with %u tracks", p->identity,
        p->sid, g_hash_table_size (p->tracks));
    g_signal_emit (
        self, signals[SIGNAL_PARTICIPANT_ADDED], 0, p->identity, p->sid);
  }
}

/* ------------------------------------------------------------------ */
/* DTLS fingerprint check (webrtcbin 1.22 does not do it) */

typedef struct
{
  GstElement *elem;
  GstWebRTCDTLSTransport *transport;
} LkDtlsEvent;

static void
lk_dtls_event_free (gpointer data)
{
  LkDtlsEvent *e = data;

  gst_object_unref (e->elem);
  gst_object_unref (e->transport);
  g_free (e);
}

static void
lk_check_fingerprint (LkConnection *self, gpointer data)
{
  LkDtlsEvent *e = data;
  GstWebRTCDTLSTransportState state;
  g_autofree gchar *pem = NULL;
  g_autoptr (GError) error = NULL;
  GPtrArray *want;

  if (e->elem != self->pub && e->elem != self->sub)
    return;
  g_object_get (e->transport, "state", &state, NULL);
  if (state != GST_WEBRTC_DTLS_TRANSPORT_STATE_CONNECTED)
    return;
  want = e->elem == self->pub ? self->pub_fps : self->sub_fps;
  g_object_get (e->transport, "remote-certificate", &pem, NULL);
  /* any listed fingerprint with sha-256 or stronger (RFC 8122) */
  if (!lk_sdp_certificate_matches (pem, want, &error)) {
    g_atomic_int_inc (&self->fingerprint_failures);
    GST_ERROR_OBJECT (self,
        "%s DTLS certificate does not match the SDP "
        "fingerprint (%s)",
        GST_OBJECT_NAME (e->elem), error ? error->message : "mismatch");
    lk_fail_session (self, TRUE,
        "remote DTLS certificate does not match the "
        "SDP fingerprint");
    return;
  }
  GST_INFO_OBJECT (
      self, "%s DTLS fingerprint verified", GST_OBJECT_NAME (e->elem));
  if (e->elem == self->pub && !g_atomic_int_get (&self->pub_verified)) {
    g_atomic_int_set (&self->pub_verified, TRUE);
    g_atomic_int_inc (&self->fingerprints_verified);
  }
  if (e->elem == self->sub && !self->sub_verified) {
    g_atomic_int_inc (&self->fingerprints_verified);
    GHashTableIter iter;
    gpointer value;

    self->sub_verified = TRUE;
    g_mutex_lock (&self->tracks_lock);
    g_hash_table_iter_init (&iter, self->outputs);
    while (g_hash_table_iter_next (&iter, NULL, &value)) {
      LkRemoteOutput *o = value;
      if (o->webrtc_pad != NULL)
        lk_unblock_pad (o->webrtc_pad);
    }
    g_mutex_unlock (&self->tracks_lock);
  }
}

static void
lk_dtls_state_notify (GObject *transport, GParamSpec *pspec, LkHandle *handle)
{
  LkDtlsEvent *e = g_new0 (LkDtlsEvent, 1);
  GstObject *elem = g_object_get_data (transport, "lk-webrtcbin");

  if (elem == NULL) {
    g_free (e);
    return;
  }
  e->elem = gst_object_ref (elem);
  e->transport = gst_object_ref (transport);
  lk_post (handle, lk_check_fingerprint, e, lk_dtls_event_free);
}

static void
lk_watch_transport (
    LkConnection *self, GstElement *elem, GstWebRTCDTLSTransport *transport)
{
  if (transport == NULL)
    return;
  if (g_ptr_array_find (self->watched_transports, transport, NULL))
    return;
  g_ptr_array_add (self->watched_transports, gst_object_ref (transport));
  g_object_set_data (G_OBJECT (transport), "lk-webrtcbin", elem);
  g_signal_connect_data (transport, "notify::state",
      G_CALLBACK (lk_dtls_state_notify), lk_handle_ref (self->handle),
      lk_handle_closure_unref, 0);
  {
    LkDtlsEvent *e = g_new0 (LkDtlsEvent, 1);
    e->elem = gst_object_ref (elem);
    e->transport = gst_object_ref (transport);
    lk_check_fingerprint (self, e);
    lk_dtls_event_free (e);
  }
}

static void
lk_watch_transports (LkConnection *self, GstElement *elem)
{
  GArray *transceivers = NULL;
  GstWebRTCSCTPTransport *sctp = NULL;
  guint i;

  g_signal_emit_by_name (elem, "get-transceivers", &transceivers);
  for (i = 0; transceivers && i < transceivers->len; i++) {
    GstWebRTCRTPTransceiver *trans
        = g_array_index (transceivers, GstWebRTCRTPTransceiver *, i);
    GstWebRTCRTPReceiver *receiver = NULL;
    GstWebRTCRTPSender *sender = NULL;
    GstWebRTCDTLSTransport *transport = NULL;

    g_object_get (trans, "receiver", &receiver, "sender", &sender, NULL);
    if (receiver) {
      g_object_get (receiver, "transport", &transport, NULL);
      lk_watch_transport (self, elem, transport);
      gst_clear_object (&transport);
    }
    if (sender) {
      g_object_get (sender, "transport", &transport, NULL);
      lk_watch_transport (self, elem, transport);
      gst_clear_object (&transport);
    }
    gst_clear_object (&receiver);
    gst_clear_object (&sender);
  }
  if (transceivers)
    g_array_unref (transceivers);
  g_object_get (elem, "sctp-transport", &sctp, NULL);
  if (sctp != NULL) {
    GstWebRTCDTLSTransport *transport = NULL;
    g_object_get (sctp, "transport", &transport, NULL);
    lk_watch_transport (self, elem, transport);
    gst_clear_object (&transport);
    gst_object_unref (sctp);
  }
}

static void
lk_store_fingerprint (
    LkConnection *self, GstElement *elem, const GstSDPMessage *sdp)
{
  GPtrArray *fps = lk_sdp_get_fingerprints (sdp, 0);

  if (fps->len == 0) {
    g_ptr_array_unref (fps);
    return;
  }
  if (elem == self->pub) {
    g_clear_pointer (&self->pub_fps, g_ptr_array_unref);
    self->pub_fps = fps;
  } else {
    g_clear_pointer (&self->sub_fps, g_ptr_array_unref);
    self->sub_fps = fps;
  }
}

/* ------------------------------------------------------------------ */
/* ICE */

typedef struct
{
  GstElement *elem;
  guint mline;
  gchar *candidate;
} LkIceEvent;

static void
lk_ice_event_free (gpointer data)
{
  LkIceEvent *e = data;

  gst_object_unref (e->elem);
  g_free (e->candidate);
  g_free (e);
}

static gchar *
lk_local_mid (GstElement *elem, guint mline)
{
  GstWebRTCSessionDescription *desc = NULL;
  gchar *mid = NULL;

  g_object_get (elem, "local-description", &desc, NULL);
  if (desc != NULL) {
    if (mline < gst_sdp_message_medias_len (desc->sdp))
      mid = g_strdup (gst_sdp_media_get_attribute_val (
          gst_sdp_message_get_media (desc->sdp, mline), "mid"));
    gst_webrtc_session_description_free (desc);
  }
  return mid;
}

static void
lk_on_local_candidate (LkConnection *self, gpointer data)
{
  LkIceEvent *e = data;
  g_autofree gchar *mid = NULL;

  if (e->elem == self->pub && !self->pub_offer_sent) {
    LkCandidate *c = g_new0 (LkCandidate, 1);
    c->mline = e->mline;
    c->candidate = g_strdup (e->candidate);
    g_ptr_array_add (self->pub_local_cands, c);
    return;
  }
  if (e->elem != self->pub && e->elem != self->sub)
    return;
  mid = lk_local_mid (e->elem, e->mline);
  lk_send_trickle (self,
      e->elem == self->pub ? LKPROTO__SIGNAL_TARGET__PUBLISHER
                           : LKPROTO__SIGNAL_TARGET__SUBSCRIBER,
      e->mline, e->candidate, mid);
}

static void
lk_ice_candidate_cb (
    GstElement *webrtc, guint mline, gchar *candidate, LkHandle *handle)
{
  LkIceEvent *e = g_new0 (LkIceEvent, 1);

  e->elem = gst_object_ref (webrtc);
  e->mline = mline;
  e->candidate = g_strdup (candidate);
  lk_post (handle, lk_on_local_candidate, e, lk_ice_event_free);
}

static void
lk_flush_remote_candidates (GstElement *elem, GPtrArray *cands)
{
  guint i;

  for (i = 0; i < cands->len; i++) {
    LkCandidate *c = g_ptr_array_index (cands, i);
    g_signal_emit_by_name (elem, "add-ice-candidate", c->mline, c->candidate);
  }
  g_ptr_array_set_size (cands, 0);
}

static void
lk_on_connection_state (LkConnection *self, gpointer data)
{
  GstElement *elem = data;
  GstWebRTCPeerConnectionState state;
  GstWebRTCICEConnectionState ice;

  if (elem != self->pub && elem != self->sub)
    return;
  g_object_get (
      elem, "connection-state", &state, "ice-connection-state", &ice, NULL);
  GST_DEBUG_OBJECT (self, "%s: connection state %d, ICE %d",
      GST_OBJECT_NAME (elem), state, ice);
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && elem == self->sub)
    self->attempt = 0;
  /* webrtcbin creates some DTLS transports (SCTP, bundled receivers) only
   * while applying the local description: watch whatever exists now */
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTING
      || state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED) {
    lk_watch_transports (self, elem);
    if (elem != self->pub && elem != self->sub)
      return; /* the fingerprint check ended the session */
  }
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED
      || ice == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED) {
    gchar *reason
        = g_strdup_printf ("%s: ICE/DTLS failed", GST_OBJECT_NAME (elem));
    lk_fail_session (self, FALSE, reason);
    g_free (reason);
  }
}

static void
lk_state_notify_cb (GstElement *webrtc, GParamSpec *pspec, LkHandle *handle)
{
  lk_post (handle, lk_on_connection_state, gst_object_ref (webrtc),
      gst_object_unref);
}

static void
lk_on_data_channel (LkConnection *self, gpointer data)
{
  GObject *channel = data;
  g_autofree gchar *label = NULL;

  g_object_get (channel, "label", &label, NULL);
  GST_DEBUG_OBJECT (self, "server data channel '%s'", label);
  g_ptr_array_add (self->data_channels, g_object_ref (channel));
}

static void
lk_data_channel_cb (GstElement *webrtc, GObject *channel, LkHandle *handle)
{
  lk_post (handle, lk_on_data_channel, g_object_ref (channel), g_object_unref);
}

static void
lk_configure_ice (
    LkConnection *self, GstElement *webrtc, Lkproto__JoinResponse *join)
{
  GstWebRTCICE *ice = NULL;
  gchar **servers;
  g_autoptr (GPtrArray) from_join = g_ptr_array_new_with_free_func (g_free);
  guint i;
  gboolean have_stun = FALSE;

  /* The configured ICE servers replace the JoinResponse's: offline, the
   * server otherwise hands out public STUN servers. */
  GST_OBJECT_LOCK (self);
  servers = g_strdupv (self->ice_servers);
  if (self->use_server_ice_servers && join != NULL) {
    gsize j, k;
    for (j = 0; j < join->n_ice_servers; j++) {
      Lkproto__ICEServer *s = join->ice_servers[j];
      for (k = 0; k < s->n_urls; k++) {
        const gchar *u = s->urls[k];
        if (g_str_has_prefix (u, "stun:"))
          g_ptr_array_add (from_join, g_strdup_printf ("stun://%s", u + 5));
        else if (g_str_has_prefix (u, "turn:")
                 || g_str_has_prefix (u, "turns:")) {
          gboolean tls = g_str_has_prefix (u, "turns:");
          g_autofree gchar *user = g_uri_escape_string (
              s->username ? s->username : "", NULL, FALSE);
          g_autofree gchar *pass = g_uri_escape_string (
              s->credential ? s->credential : "", NULL, FALSE);
          g_ptr_array_add (from_join,
              g_strdup_printf ("%s://%s:%s@%s", tls ? "turns" : "turn", user,
                  pass, u + (tls ? 6 : 5)));
        }
      }
    }
  }
  GST_OBJECT_UNLOCK (self);
  for (i = 0; servers && servers[i]; i++)
    g_ptr_array_add (from_join, g_strdup (servers[i]));
  g_strfreev (servers);
  for (i = 0; i < from_join->len; i++) {
    const gchar *s = g_ptr_array_index (from_join, i);

    if (g_str_has_prefix (s, "stun://") && !have_stun) {
      g_object_set (webrtc, "stun-server", s, NULL);
      have_stun = TRUE;
    } else if (g_str_has_prefix (s, "turn://")
               || g_str_has_prefix (s, "turns://")) {
      gboolean ok = FALSE;
      g_signal_emit_by_name (webrtc, "add-turn-server", s, &ok);
    }
  }

  g_object_get (webrtc, "ice-agent", &ice, NULL);
  if (ice != NULL) {
    GST_OBJECT_LOCK (self);
    servers = g_strdupv (self->local_addresses);
    GST_OBJECT_UNLOCK (self);
    for (i = 0; servers && servers[i]; i++) {
      gboolean ok = FALSE;
      g_signal_emit_by_name (ice, "add-local-ip-address", servers[i], &ok);
      if (!ok)
        GST_WARNING_OBJECT (self, "cannot use local address %s", servers[i]);
    }
    g_strfreev (servers);
    gst_object_unref (ice);
  }
}

/* A subscriber's jitter buffers start as soon as two consecutive packets
 * are in, not after the whole latency (200 ms on the way to the first
 * picture); the latency still absorbs reordering and retransmissions. */
static void
lk_new_jitterbuffer_cb (GstElement *rtpbin, GstElement *jitterbuffer,
    guint session, guint ssrc, gpointer user_data)
{
  if (g_object_class_find_property (
          G_OBJECT_GET_CLASS (jitterbuffer), "faststart-min-packets"))
    g_object_set (jitterbuffer, "faststart-min-packets", 2u, NULL);
}

static GstElement *
lk_make_webrtcbin (
    LkConnection *self, const gchar *role, Lkproto__JoinResponse *join)
{
  GstElement *webrtc = gst_element_factory_make ("webrtcbin", role);
  guint latency;

  if (webrtc == NULL)
    return NULL;
  GST_OBJECT_LOCK (self);
  latency = self->latency;
  GST_OBJECT_UNLOCK (self);
  gst_util_set_object_arg (G_OBJECT (webrtc), "bundle-policy", "max-bundle");
  g_object_set (webrtc, "latency", latency, NULL);
  lk_configure_ice (self, webrtc, join);

  g_signal_connect_data (webrtc, "on-ice-candidate",
      G_CALLBACK (lk_ice_candidate_cb), lk_handle_ref (self->handle),
      lk_handle_closure_unref, 0);
  g_signal_connect_data (webrtc, "notify::connection-state",
      G_CALLBACK (lk_state_notify_cb), lk_handle_ref (self->handle),
      lk_handle_closure_unref, 0);
  g_signal_connect_data (webrtc, "notify::ice-connection-state",
      G_CALLBACK (lk_state_notify_cb), lk_handle_ref (self->handle),
      lk_handle_closure_unref, 0);
  if (g_str_equal (role, "subscriber")) {
    GstElement *rtpbin = gst_bin_get_by_name (GST_BIN (webrtc), "rtpbin");

    if (rtpbin != NULL) {
      g_signal_connect (rtpbin, "new-jitterbuffer",
          G_CALLBACK (lk_new_jitterbuffer_cb), NULL);
      gst_object_unref (rtpbin);
    }
    g_signal_connect_data (webrtc, "pad-added", G_CALLBACK (lk_sub_pad_added),
        lk_handle_ref (self->handle), lk_handle_closure_unref, 0);
    g_signal_connect_data (webrtc, "pad-removed",
        G_CALLBACK (lk_sub_pad_removed), lk_handle_ref (self->handle),
        lk_handle_closure_unref, 0);
    g_signal_connect_data (webrtc, "on-data-channel",
        G_CALLBACK (lk_data_channel_cb), lk_handle_ref (self->handle),
        lk_handle_closure_unref, 0);
  }
  /* one reference for self->pub/sub, one for the bin: lk_remove_webrtcbin()
   * drops both */
  gst_object_ref_sink (webrtc);
  gst_bin_add (GST_BIN (self), webrtc);
  gst_element_sync_state_with_parent (webrtc);
  /* negotiation needs at least READY, even before the pipeline plays */
  if (GST_STATE (webrtc) == GST_STATE_NULL)
    gst_element_set_state (webrtc, GST_STATE_READY);
  return webrtc;
}

/* ------------------------------------------------------------------ */
/* promises */

typedef struct
{
  GstElement *elem;
  GstPromise *promise;
  guint id;
} LkPromiseEvent;

static void
lk_promise_event_free (gpointer data)
{
  LkPromiseEvent *e = data;

  gst_object_unref (e->elem);
  gst_promise_unref (e->promise);
  g_free (e);
}

typedef struct
{
  LkHandle *handle;
  GstElement *elem;
  LkPostFunc func;
  guint id;
} LkPromiseCtx;

static void
lk_promise_ctx_free (gpointer data)
{
  LkPromiseCtx *c = data;

  lk_handle_unref (c->handle);
  gst_object_unref (c->elem);
  g_free (c);
}

static void
lk_promise_done (GstPromise *promise, gpointer data)
{
  LkPromiseCtx *c = data;
  LkPromiseEvent *e = g_new0 (LkPromiseEvent, 1);

  e->elem = gst_object_ref (c->elem);
  /* takes over the reference lk_promise_new() gave to the caller */
  e->promise = promise;
  e->id = c->id;
  lk_post (c->handle, c->func, e, lk_promise_event_free);
}

static GstPromise *
lk_promise_new (LkConnection *self, GstElement *elem, LkPostFunc func, guint id)
{
  LkPromiseCtx *c = g_new0 (LkPromiseCtx, 1);

  c->handle = lk_handle_ref (self->handle);
  c->elem = gst_object_ref (elem);
  c->func = func;
  c->id = id;
  return gst_promise_new_with_change_func (
      lk_promise_done, c, lk_promise_ctx_free);
}

/* The description a create-offer/create-answer promise replied, or NULL. */
static GstWebRTCSessionDescription *
lk_promise_take_sdp (LkConnection *self, LkPromiseEvent *e, const gchar *field)
{
  const GstStructure *reply;
  GstWebRTCSessionDescription *desc = NULL;

  if (gst_promise_wait (e->promise) != GST_PROMISE_RESULT_REPLIED)
    return NULL;
  reply = gst_promise_get_reply (e->promise);
  if (reply == NULL)
    return NULL;
  if (gst_structure_has_field (reply, "error")) {
    GError *error = NULL;
    gst_structure_get (reply, "error", G_TYPE_ERROR, &error, NULL);
    GST_WARNING_OBJECT (self, "%s: %s", GST_OBJECT_NAME (e->elem),
        error ? error->message : "error");
    g_clear_error (&error);
    return NULL;
  }
  gst_structure_get (
      reply, field, GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &desc, NULL);
  return desc;
}

static gboolean
lk_promise_ok (LkConnection *self, LkPromiseEvent *e)
{
  const GstStructure *reply;

  if (gst_promise_wait (e->promise) != GST_PROMISE_RESULT_REPLIED)
    return FALSE;
  reply = gst_promise_get_reply (e->promise);
  if (reply != NULL && gst_structure_has_field (reply, "error")) {
    GError *error = NULL;
    gst_structure_get (reply, "error", G_TYPE_ERROR, &error, NULL);
    GST_WARNING_OBJECT (self, "%s: %s", GST_OBJECT_NAME (e->elem),
        error ? error->message : "error");
    g_clear_error (&error);
    return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* subscriber: the server offers, we answer */

static void lk_sub_negotiate (LkConnection *self);

static void
lk_sub_answer_created (LkConnection *self, gpointer data)
{
  LkPromiseEvent *e = data;
  GstWebRTCSessionDescription *answer;
  g_autofree gchar *text = NULL;

  if (e->elem != self->sub)
    return;
  answer = lk_promise_take_sdp (self, e, "answer");
  if (answer == NULL) {
    lk_fail_session (self, FALSE, "subscriber: create-answer failed");
    return;
  }
  g_signal_emit_by_name (self->sub, "set-local-description", answer, NULL);
  text = gst_sdp_message_as_text (answer->sdp);
  lk_send_sdp (self, FALSE, text, e->id);
  gst_webrtc_session_description_free (answer);
  GST_DEBUG_OBJECT (self, "subscriber answer %u sent", e->id);
  self->sub_negotiating = FALSE;
  if (self->pending_sub_offer != NULL)
    lk_sub_negotiate (self);
}

static void
lk_sub_remote_set (LkConnection *self, gpointer data)
{
  LkPromiseEvent *e = data;

  if (e->elem != self->sub)
    return;
  if (!lk_promise_ok (self, e)) {
    lk_fail_session (self, FALSE,
        "subscriber: set-remote-description "
        "failed");
    return;
  }
  self->sub_remote_set = TRUE;
  lk_flush_remote_candidates (self->sub, self->sub_remote_cands);
  lk_watch_transports (self, self->sub);
  if (self->sub != e->elem)
    return; /* the fingerprint check ended the session */
  g_signal_emit_by_name (self->sub, "create-answer", NULL,
      lk_promise_new (self, self->sub, lk_sub_answer_created, e->id));
}

/* Puts each video track's own codec first in its m-section of a
 * subscriber offer (see lk_sdp_prefer_codec()): our answer then names it,
 * and the SFU can forward an H.264 or VP9 track, not only VP8. The codec
 * is the first of the track's mime type and its codecs' (from the join
 * response or a participant update, which the server sends, at once for a
 * publisher, before it subscribes us to the track) that our receive side
 * handles (lk_sdp_pick_receive_codec()): an AV1 or H.265 track with a VP8
 * backup codec is answered in VP8, and the SFU forwards the backup. When
 * none is, the offer is left as the SFU made it. webrtcbin keeps a
 * section's codec on later offers, so a codec unknown at the first offer
 * stays VP8 for the session: that is logged as a warning. */
static void
lk_sdp_prefer_track_codecs (LkConnection *self, GstSDPMessage *sdp)
{
  g_autoptr (GPtrArray) media = lk_sdp_list_media (sdp);
  guint i;

  for (i = 0; i < media->len; i++) {
    LkSdpMedia *m = g_ptr_array_index (media, i);
    const gchar *track_sid, *codec;
    gchar *mimes;
    LkParticipant *p = NULL;
    LkRemoteTrack *t;

    /* audio is Opus (lk_sdp_strip_audio_red() leaves it first; a RED
     * track's mime is audio/red, and the server sends it as plain Opus) */
    if (m->mid == NULL || g_strcmp0 (m->kind, "video") != 0)
      continue;
    track_sid = g_hash_table_lookup (self->mid_to_track, m->mid);
    t = track_sid ? lk_find_remote_track (self, track_sid, &p) : NULL;
    if (t == NULL) {
      /* (an m-line of a track that is gone) */
      GST_DEBUG_OBJECT (self, "mid %s: no current track (%s)", m->mid,
          GST_STR_NULL (track_sid));
      continue;
    }
    if (t->mimes == NULL || t->mimes[0] == NULL) {
      GST_WARNING_OBJECT (self,
          "mid %s: codec of track %s unknown: answering the SFU's first "
          "codec",
          m->mid, GST_STR_NULL (track_sid));
      continue;
    }
    mimes = g_strjoinv (", ", t->mimes);
    codec = lk_sdp_pick_receive_codec ((const gchar *const *)t->mimes);
    if (codec == NULL)
      GST_WARNING_OBJECT (self,
          "subscriber offer: track %s is %s, none of which we receive: "
          "offer left alone",
          track_sid, mimes);
    else if (!lk_sdp_prefer_codec (sdp, i, codec, NULL))
      GST_WARNING_OBJECT (self,
          "subscriber offer: track %s is %s, mid %s does not offer %s",
          track_sid, mimes, m->mid, codec);
    else
      GST_DEBUG_OBJECT (self, "mid %s: track %s (%s) answered in %s", m->mid,
          track_sid, mimes, codec);
    g_free (mimes);
  }
}

static void
lk_sub_negotiate (LkConnection *self)
{
  Lkproto__SessionDescription *offer = self->pending_sub_offer;
  GstSDPMessage *sdp = NULL;
  GstWebRTCSessionDescription *desc;
  GHashTable *map;
  GHashTableIter iter;
  gpointer key, value;
  gsize j;

  if (self->sub == NULL || offer == NULL || self->sub_negotiating)
    return;
  self->pending_sub_offer = NULL;
  if (gst_sdp_message_new_from_text (offer->sdp ? offer->sdp : "", &sdp)
          != GST_SDP_OK
      || gst_sdp_message_medias_len (sdp) == 0) {
    if (sdp)
      gst_sdp_message_free (sdp);
    lkproto__session_description__free_unpacked (offer, NULL);
    g_atomic_int_inc (&self->dropped_messages);
    lk_fail_session (self, FALSE, "subscriber offer: malformed SDP");
    return;
  }
  if (gst_sdp_message_medias_len (sdp) > LK_MAX_MLINES
      || offer->n_mid_to_track_id > LK_MAX_MLINES) {
    /* protocol 3 never reuses an m-line: a long session with many comings
     * and goings grows the subscriber SDP; a fresh session starts small */
    gst_sdp_message_free (sdp);
    lkproto__session_description__free_unpacked (offer, NULL);
    lk_fail_session (
        self, FALSE, "subscriber offer: too many m-lines, rejoining");
    return;
  }
  lk_sdp_strip_audio_red (sdp);
  map = lk_sdp_track_map (sdp);
  /* every offer is complete: the map is rebuilt, not grown */
  g_hash_table_remove_all (self->mid_to_track);
  g_hash_table_iter_init (&iter, map);
  while (g_hash_table_iter_next (&iter, &key, &value))
    g_hash_table_insert (self->mid_to_track, g_strdup (key), g_strdup (value));
  g_hash_table_unref (map);
  /* the server's own map (>= v1.9.2) wins */
  for (j = 0; j < offer->n_mid_to_track_id; j++) {
    Lkproto__StringEntry *entry = offer->mid_to_track_id[j];
    if (entry->key && entry->value && *entry->value)
      g_hash_table_insert (
          self->mid_to_track, g_strdup (entry->key), g_strdup (entry->value));
  }
  lk_sdp_prefer_track_codecs (self, sdp);
  lk_store_fingerprint (self, self->sub, sdp);
  self->sub_offer_id = offer->id;
  self->sub_negotiating = TRUE;
  desc = gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_OFFER, sdp);
  g_signal_emit_by_name (self->sub, "set-remote-description", desc,
      lk_promise_new (self, self->sub, lk_sub_remote_set, offer->id));
  gst_webrtc_session_description_free (desc);
  lkproto__session_description__free_unpacked (offer, NULL);
  lk_resolve_pending_pads (self);
}

/* ------------------------------------------------------------------ */
/* publisher: we offer, the server answers */

static void lk_pub_negotiate (LkConnection *self);
static void lk_ensure_thread (LkConnection *self);
static gboolean lk_publish_timeout (gpointer data);

static gboolean
lk_pub_all_published (LkConnection *self)
{
  guint i;
  gboolean all = TRUE;

  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);
    if (t->add_sent && t->sid == NULL && !t->removed && !t->refused)
      all = FALSE;
  }
  g_mutex_unlock (&self->tracks_lock);
  return all;
}

static void
lk_pub_send_offer (LkConnection *self)
{
  GstWebRTCSessionDescription *offer = self->pending_pub_offer;
  g_autofree gchar *text = NULL;

  self->pending_pub_offer = NULL;
  g_signal_emit_by_name (self->pub, "set-local-description", offer, NULL);
  text = gst_sdp_message_as_text (offer->sdp);
  lk_send_sdp (self, TRUE, text, ++self->pub_offer_id);
  gst_webrtc_session_description_free (offer);
  self->pub_offer_sent = TRUE;
  GST_DEBUG_OBJECT (self, "publisher offer %u sent", self->pub_offer_id);
  {
    guint i;
    for (i = 0; i < self->pub_local_cands->len; i++) {
      LkCandidate *c = g_ptr_array_index (self->pub_local_cands, i);
      g_autofree gchar *mid = lk_local_mid (self->pub, c->mline);
      lk_send_trickle (
          self, LKPROTO__SIGNAL_TARGET__PUBLISHER, c->mline, c->candidate, mid);
    }
    g_ptr_array_set_size (self->pub_local_cands, 0);
  }
}

static void
lk_send_add_track (LkConnection *self, LkLocalTrack *t)
{
  Lkproto__SignalRequest req = LKPROTO__SIGNAL_REQUEST__INIT;
  Lkproto__AddTrackRequest add = LKPROTO__ADD_TRACK_REQUEST__INIT;
  Lkproto__VideoLayer layer = LKPROTO__VIDEO_LAYER__INIT;
  Lkproto__VideoLayer *layers[1] = { &layer };
  gboolean video = g_str_equal (t->kind, "video");

  add.cid = t->cid;
  add.name = t->name;
  add.type = video ? LKPROTO__TRACK_TYPE__VIDEO : LKPROTO__TRACK_TYPE__AUDIO;
  add.source = t->source;
  add.disable_red = TRUE;
  add.muted = t->muted;
  add.encryption = t->encrypted ? LKPROTO__ENCRYPTION_TYPE__GCM
                                : LKPROTO__ENCRYPTION_TYPE__NONE;
  if (video) {
    add.width = t->width;
    add.height = t->height;
    layer.quality = LKPROTO__VIDEO_QUALITY__HIGH;
    layer.width = t->width;
    layer.height = t->height;
    add.n_layers = 1;
    add.layers = layers;
  }
  req.message_case = LKPROTO__SIGNAL_REQUEST__MESSAGE_ADD_TRACK;
  req.add_track = &add;
  lk_send (self, &req);
  t->add_sent = TRUE;
  GST_DEBUG_OBJECT (
      self, "add_track %s (cid %s, %s)", t->name, t->cid, t->kind);
}

static void
lk_pub_offer_created (LkConnection *self, gpointer data)
{
  LkPromiseEvent *e = data;
  GstWebRTCSessionDescription *offer;
  g_autoptr (GPtrArray) media = NULL;
  guint i, m = 0;

  if (e->elem != self->pub)
    return;
  offer = lk_promise_take_sdp (self, e, "offer");
  if (offer == NULL) {
    lk_fail_session (self, FALSE, "publisher: create-offer failed");
    return;
  }
  /* The cid LiveKit matches is the msid track id of each m-line (webrtcbin
   * 1.22: the transceiver's name); m-lines follow our tracks' order. */
  media = lk_sdp_list_media (offer->sdp);
  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);
    LkSdpMedia *sm = NULL;

    if (t->webrtc_pad == NULL)
      continue;
    while (m < media->len) {
      sm = g_ptr_array_index (media, m++);
      if (g_strcmp0 (sm->kind, "application") != 0)
        break;
      sm = NULL;
    }
    if (t->cid == NULL)
      t->cid = g_strdup (sm && sm->track_id ? sm->track_id : t->name);
  }
  g_mutex_unlock (&self->tracks_lock);
  g_clear_pointer (
      &self->pending_pub_offer, gst_webrtc_session_description_free);
  self->pending_pub_offer = offer;

  /* lk_connection_add_track() may grow the array from another thread */
  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);
    if (t->webrtc_pad != NULL && !t->add_sent && !t->removed && !t->refused)
      lk_send_add_track (self, t);
  }
  g_mutex_unlock (&self->tracks_lock);
  if (lk_pub_all_published (self))
    lk_pub_send_offer (self);
  else if (self->publish_timeout_id == 0)
    self->publish_timeout_id = lk_timeout_add (
        self, LK_PUBLISH_TIMEOUT_S * 1000, lk_publish_timeout);
}

static void
lk_pub_remote_set (LkConnection *self, gpointer data)
{
  LkPromiseEvent *e = data;

  if (e->elem != self->pub)
    return;
  if (!lk_promise_ok (self, e)) {
    lk_fail_session (self, FALSE,
        "publisher: set-remote-description "
        "failed");
    return;
  }
  self->pub_remote_set = TRUE;
  lk_flush_remote_candidates (self->pub, self->pub_remote_cands);
  lk_watch_transports (self, self->pub);
  if (self->pub != e->elem)
    return; /* the fingerprint check ended the session */
  self->pub_negotiating = FALSE;
  if (self->pub_renegotiate) {
    self->pub_renegotiate = FALSE;
    lk_pub_negotiate (self);
  }
}

static void
lk_handle_pub_answer (LkConnection *self, Lkproto__SessionDescription *sd)
{
  GstSDPMessage *sdp = NULL;
  GstWebRTCSessionDescription *desc;

  if (self->pub == NULL || !self->pub_offer_sent)
    return;
  if (gst_sdp_message_new_from_text (sd->sdp ? sd->sdp : "", &sdp)
      != GST_SDP_OK) {
    if (sdp)
      gst_sdp_message_free (sdp);
    g_atomic_int_inc (&self->dropped_messages);
    lk_fail_session (self, FALSE, "publisher answer: malformed SDP");
    return;
  }
  lk_store_fingerprint (self, self->pub, sdp);
  desc = gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
  g_signal_emit_by_name (self->pub, "set-remote-description", desc,
      lk_promise_new (self, self->pub, lk_pub_remote_set, sd->id));
  gst_webrtc_session_description_free (desc);
}

static gboolean
lk_caps_wait_timeout (gpointer data)
{
  LkConnection *self = data;

  self->caps_wait_id = 0;
  lk_pub_negotiate (self);
  return G_SOURCE_REMOVE;
}

static void
lk_pub_negotiate (LkConnection *self)
{
  guint i;
  gboolean any = FALSE, waiting = FALSE;

  if (self->pub == NULL)
    return;
  if (self->pub_negotiating) {
    self->pub_renegotiate = TRUE;
    return;
  }
  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);
    GstWebRTCRTPTransceiver *trans = NULL;
    GstPad *pad;

    if (t->webrtc_pad != NULL || t->removed || t->refused)
      continue;
    pad = gst_element_request_pad_simple (self->pub, "sink_%u");
    if (pad == NULL) {
      GST_ERROR_OBJECT (self, "webrtcbin refused a sink pad");
      continue;
    }
    g_object_get (pad, "transceiver", &trans, NULL);
    if (trans != NULL) {
      g_object_set (trans, "direction",
          GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, "codec-preferences",
          t->caps, NULL);
      gst_object_unref (trans);
    }
    t->webrtc_pad = pad;
    gst_ghost_pad_set_target (GST_GHOST_PAD (t->ghost), pad);
  }
  /* webrtcbin 1.22 writes the a=ssrc/msid lines LiveKit needs only for
   * pads that already have caps: wait for the media to reach them. */
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);

    if (t->removed || t->refused)
      continue;
    if (t->webrtc_pad != NULL && t->sid == NULL
        && !gst_pad_has_current_caps (t->webrtc_pad))
      waiting = TRUE;
    if (t->webrtc_pad != NULL && !t->add_sent)
      any = TRUE;
  }
  g_mutex_unlock (&self->tracks_lock);
  if (self->pub_offer_needed) {
    self->pub_offer_needed = FALSE;
    any = TRUE;
  }
  if (waiting) {
    if (self->caps_wait_id == 0)
      self->caps_wait_id = lk_timeout_add (self, 50, lk_caps_wait_timeout);
    return;
  }
  if (!any)
    return;
  self->pub_negotiating = TRUE;
  g_signal_emit_by_name (self->pub, "create-offer", NULL,
      lk_promise_new (self, self->pub, lk_pub_offer_created, 0));
}

static void
lk_handle_track_published (
    LkConnection *self, Lkproto__TrackPublishedResponse *tp)
{
  LkLocalTrack *found = NULL;
  guint i;

  if (tp->track == NULL || tp->track->sid == NULL)
    return;
  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len && !found; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);
    if (t->add_sent && t->sid == NULL && g_strcmp0 (t->cid, tp->cid) == 0)
      found = t;
  }
  if (found != NULL) {
    found->sid = g_strdup (tp->track->sid);
  }
  g_mutex_unlock (&self->tracks_lock);
  if (found == NULL) {
    GST_WARNING_OBJECT (self, "track_published for unknown cid %s", tp->cid);
    return;
  }
  GST_INFO_OBJECT (self, "published %s as %s", found->name, tp->track->sid);
  g_signal_emit (
      self, signals[SIGNAL_TRACK_PUBLISHED], 0, found->name, tp->track->sid);
  if (lk_pub_all_published (self))
    lk_source_clear (self, &self->publish_timeout_id);
  if (self->pending_pub_offer != NULL && lk_pub_all_published (self))
    lk_pub_send_offer (self);
}

/* The server will not publish @t (RequestResponse NOT_ALLOWED,
 * LIMIT_EXCEEDED, ..., or no TrackPublished in time): stop sending it, tell
 * the application, and negotiate the other tracks without it. */
static void
lk_refuse_track (LkConnection *self, LkLocalTrack *t, const gchar *reason)
{
  GstPad *webrtc_pad = NULL;
  gchar *name;

  g_mutex_lock (&self->tracks_lock);
  if (t->refused || t->removed) {
    g_mutex_unlock (&self->tracks_lock);
    return;
  }
  g_atomic_int_set (&t->refused, TRUE);
  name = g_strdup (t->name);
  if (t->webrtc_pad != NULL)
    webrtc_pad = gst_object_ref (t->webrtc_pad);
  g_mutex_unlock (&self->tracks_lock);

  if (webrtc_pad != NULL) {
    GstWebRTCRTPTransceiver *trans = NULL;

    g_object_get (webrtc_pad, "transceiver", &trans, NULL);
    if (trans != NULL) {
      g_object_set (trans, "direction",
          GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_INACTIVE, NULL);
      gst_object_unref (trans);
    }
    gst_object_unref (webrtc_pad);
  }
  GST_WARNING_OBJECT (
      self, "the server refused to publish track %s: %s", name, reason);
  GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
      ("LiveKit server refused to publish track %s", name), ("%s", reason));
  g_signal_emit (self, signals[SIGNAL_TRACK_REFUSED], 0, name, reason);
  g_free (name);

  /* The offer held back for this track's TrackPublished is stale: offer
   * again, with the refused track's m-line inactive. */
  if (self->pending_pub_offer != NULL) {
    g_clear_pointer (
        &self->pending_pub_offer, gst_webrtc_session_description_free);
    self->pub_negotiating = FALSE;
  }
  if (lk_pub_all_published (self))
    lk_source_clear (self, &self->publish_timeout_id);
  self->pub_offer_needed = TRUE;
  lk_pub_negotiate (self);
}

static gboolean
lk_publish_timeout (gpointer data)
{
  LkConnection *self = data;
  g_autoptr (GPtrArray) late = g_ptr_array_new ();
  guint i;

  self->publish_timeout_id = 0;
  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);
    if (t->add_sent && t->sid == NULL && !t->removed && !t->refused)
      g_ptr_array_add (late, t);
  }
  g_mutex_unlock (&self->tracks_lock);
  /* tracks are only freed with the connection */
  for (i = 0; i < late->len; i++)
    lk_refuse_track (self, g_ptr_array_index (late, i),
        "no TrackPublished from the server in time");
  return G_SOURCE_REMOVE;
}

static const gchar *
lk_request_reason_name (Lkproto__RequestResponse__Reason reason)
{
  switch (reason) {
    case LKPROTO__REQUEST_RESPONSE__REASON__OK:
      return "ok";
    case LKPROTO__REQUEST_RESPONSE__REASON__NOT_FOUND:
      return "not found";
    case LKPROTO__REQUEST_RESPONSE__REASON__NOT_ALLOWED:
      return "not allowed";
    case LKPROTO__REQUEST_RESPONSE__REASON__LIMIT_EXCEEDED:
      return "limit exceeded";
    case LKPROTO__REQUEST_RESPONSE__REASON__QUEUED:
      return "queued";
    case LKPROTO__REQUEST_RESPONSE__REASON__UNSUPPORTED_TYPE:
      return "unsupported type";
    default:
      return "error";
  }
}

/* RequestResponse (SignalResponse field 22): the server's verdict on one of
 * our requests; only refusals of AddTrackRequest matter to us. */
static void
lk_handle_request_response (LkConnection *self, Lkproto__RequestResponse *rr)
{
  LkLocalTrack *found = NULL;
  g_autofree gchar *reason = NULL;
  guint i;

  if (rr->reason == LKPROTO__REQUEST_RESPONSE__REASON__OK
      || rr->reason == LKPROTO__REQUEST_RESPONSE__REASON__QUEUED)
    return;
  reason = g_strdup_printf ("%s%s%s", lk_request_reason_name (rr->reason),
      rr->message && *rr->message ? ": " : "", rr->message ? rr->message : "");
  if (rr->request_case != LKPROTO__REQUEST_RESPONSE__REQUEST_ADD_TRACK
      || rr->add_track == NULL || rr->add_track->cid == NULL) {
    GST_WARNING_OBJECT (
        self, "server refused a request (%d): %s", rr->request_case, reason);
    return;
  }
  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len && !found; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);
    if (t->add_sent && t->sid == NULL
        && g_strcmp0 (t->cid, rr->add_track->cid) == 0)
      found = t;
  }
  g_mutex_unlock (&self->tracks_lock);
  if (found == NULL) {
    GST_WARNING_OBJECT (self, "server refused add_track for unknown cid %s: %s",
        rr->add_track->cid, reason);
    return;
  }
  lk_refuse_track (self, found, reason);
}

/* The server unpublished one of our tracks (e.g. an admin did). */
static void
lk_handle_track_unpublished (LkConnection *self, const gchar *sid)
{
  gchar *name = NULL;
  guint i;

  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);

    if (t->sid != NULL && g_strcmp0 (t->sid, sid) == 0)
      name = g_strdup (t->name);
  }
  g_mutex_unlock (&self->tracks_lock);
  GST_WARNING_OBJECT (self, "server unpublished our track %s (%s)", sid,
      name ? name : "unknown");
  if (name != NULL)
    g_signal_emit (self, signals[SIGNAL_TRACK_UNPUBLISHED], 0, name, sid);
  g_free (name);
}

/* The server muted or unmuted one of our tracks: an admin's remote mute,
 * or (protocol 3) how a server-side unpublish reaches us. */
static void
lk_handle_server_mute (LkConnection *self, Lkproto__MuteTrackRequest *mute)
{
  gchar *name = NULL;
  gboolean changed = FALSE;
  guint i;

  if (mute == NULL || mute->sid == NULL)
    return;
  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);

    if (t->sid != NULL && g_strcmp0 (t->sid, mute->sid) == 0) {
      name = g_strdup (t->name);
      changed = t->muted != mute->muted;
      t->muted = mute->muted;
    }
  }
  g_mutex_unlock (&self->tracks_lock);
  if (name == NULL) {
    GST_DEBUG_OBJECT (self, "mute for unknown track %s", mute->sid);
    return;
  }
  GST_INFO_OBJECT (self, "server %s our track %s (%s)",
      mute->muted ? "muted" : "unmuted", name, mute->sid);
  if (changed)
    g_signal_emit (self, signals[SIGNAL_LOCAL_TRACK_MUTED], 0, name, mute->sid,
        mute->muted);
  g_free (name);
}

static void
lk_post_negotiate (LkConnection *self, gpointer data)
{
  lk_pub_negotiate (self);
}

/* ------------------------------------------------------------------ */
/* signalling input */

static gboolean
lk_ping_timeout (gpointer data)
{
  LkConnection *self = data;
  Lkproto__SignalRequest req = LKPROTO__SIGNAL_REQUEST__INIT;
  Lkproto__Ping ping = LKPROTO__PING__INIT;
  gint64 now = g_get_monotonic_time ();

  if (now - self->last_rx_us > (gint64)self->ping_timeout * G_USEC_PER_SEC) {
    self->ping_id = 0;
    lk_fail_session (self, FALSE,
        "no message from the server within the "
        "ping timeout");
    return G_SOURCE_REMOVE;
  }
  ping.timestamp = g_get_real_time () / 1000;
  ping.rtt = self->rtt_ms;
  req.message_case = LKPROTO__SIGNAL_REQUEST__MESSAGE_PING_REQ;
  req.ping_req = &ping;
  lk_send (self, &req);
  return G_SOURCE_CONTINUE;
}

static void
lk_handle_join (LkConnection *self, Lkproto__JoinResponse *join)
{
  GHashTableIter iter;
  gpointer value;
  g_autoptr (GPtrArray) gone = g_ptr_array_new_with_free_func (g_free);
  gsize i;

  lk_source_clear (self, &self->join_timeout_id);
  if (join->participant == NULL || join->participant->sid == NULL) {
    lk_fail_session (self, FALSE, "join response without participant");
    return;
  }
  GST_OBJECT_LOCK (self);
  g_free (self->participant_sid);
  self->participant_sid = g_strdup (join->participant->sid);
  GST_OBJECT_UNLOCK (self);
  GST_INFO_OBJECT (self,
      "joined room %s as %s (%s), server %s protocol %d, "
      "subscriber primary %d",
      join->room ? join->room->name : "?", join->participant->identity,
      join->participant->sid, join->server_version,
      join->server_info ? join->server_info->protocol : -1,
      join->subscriber_primary);
  g_object_notify (G_OBJECT (self), "participant-sid");
  self->ping_interval = join->ping_interval > 0 ? join->ping_interval : 5;
  self->ping_timeout = join->ping_timeout > 0 ? join->ping_timeout : 15;

  self->pub = lk_make_webrtcbin (self, "publisher", join);
  self->sub = lk_make_webrtcbin (self, "subscriber", join);
  if (self->pub == NULL || self->sub == NULL) {
    lk_fail_session (self, TRUE, "webrtcbin is missing (gst-plugins-bad)");
    return;
  }

  g_hash_table_iter_init (&iter, self->participants);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    ((LkParticipant *)value)->stale = TRUE;
  for (i = 0; i < join->n_other_participants; i++)
    lk_handle_participant (self, join->other_participants[i]);
  g_hash_table_iter_init (&iter, self->participants);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    LkParticipant *p = value;
    if (p->stale)
      g_ptr_array_add (gone, g_strdup (p->sid));
  }
  for (i = 0; i < gone->len; i++)
    lk_participant_gone (self, g_ptr_array_index (gone, i));

  self->last_rx_us = g_get_monotonic_time ();
  self->ping_id
      = lk_timeout_add (self, self->ping_interval * 1000, lk_ping_timeout);
  lk_set_state (self, LK_CONNECTION_STATE_CONNECTED);
  lk_pub_negotiate (self);
}

static void
lk_handle_trickle (LkConnection *self, Lkproto__TrickleRequest *trickle)
{
  g_autofree gchar *candidate = NULL;
  g_autofree gchar *mid = NULL;
  gint mline = -1;
  g_autoptr (GError) error = NULL;
  gboolean pub = trickle->target == LKPROTO__SIGNAL_TARGET__PUBLISHER;
  GstElement *elem = pub ? self->pub : self->sub;

  if (elem == NULL)
    return;
  if (!lk_sdp_candidate_init_from_json (
          trickle->candidateinit, &candidate, &mid, &mline, &error)) {
    g_atomic_int_inc (&self->dropped_messages);
    GST_WARNING_OBJECT (self, "dropping trickle: %s", error->message);
    return;
  }
  if (*candidate == '\0')
    return; /* end of candidates */
  if (mline < 0)
    mline = 0; /* max-bundle: one transport */
  if ((pub && !self->pub_remote_set) || (!pub && !self->sub_remote_set)) {
    GPtrArray *queue = pub ? self->pub_remote_cands : self->sub_remote_cands;
    LkCandidate *c;

    if (queue->len >= LK_MAX_QUEUED_CANDIDATES) {
      g_atomic_int_inc (&self->dropped_messages);
      GST_WARNING_OBJECT (
          self, "dropping trickle: %u candidates queued", queue->len);
      return;
    }
    c = g_new0 (LkCandidate, 1);
    c->mline = mline;
    c->candidate = g_steal_pointer (&candidate);
    g_ptr_array_add (pub ? self->pub_remote_cands : self->sub_remote_cands, c);
    return;
  }
  g_signal_emit_by_name (elem, "add-ice-candidate", (guint)mline, candidate);
}

static void
lk_handle_response (LkConnection *self, Lkproto__SignalResponse *resp)
{
  gsize i;

  GST_LOG_OBJECT (self, "received %s", lk_proto_response_name (resp));
  switch (resp->message_case) {
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_JOIN:
      if (self->pub != NULL) {
        GST_WARNING_OBJECT (self, "second join response ignored");
        break;
      }
      lk_handle_join (self, resp->join);
      break;
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_OFFER:
      g_clear_pointer (&self->pending_sub_offer, lk_sd_free);
      self->pending_sub_offer = resp->offer;
      resp->offer = NULL;
      resp->message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE__NOT_SET;
      lk_sub_negotiate (self);
      break;
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_ANSWER:
      lk_handle_pub_answer (self, resp->answer);
      break;
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_TRICKLE:
      lk_handle_trickle (self, resp->trickle);
      break;
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_UPDATE:
      for (i = 0; i < resp->update->n_participants; i++)
        lk_handle_participant (self, resp->update->participants[i]);
      lk_resolve_pending_pads (self);
      break;
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_TRACK_PUBLISHED:
      lk_handle_track_published (self, resp->track_published);
      break;
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_TRACK_UNPUBLISHED:
      lk_handle_track_unpublished (self, resp->track_unpublished->track_sid);
      break;
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_REQUEST_RESPONSE:
      lk_handle_request_response (self, resp->request_response);
      break;
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_MUTE:
      lk_handle_server_mute (self, resp->mute);
      break;
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_LEAVE: {
      Lkproto__LeaveRequest *leave = resp->leave;

      if (leave->action == LKPROTO__LEAVE_ACTION__DISCONNECT
          && !leave->can_reconnect) {
        GST_ELEMENT_WARNING (self, RESOURCE, READ,
            ("LiveKit server closed the session"),
            ("leave, reason %d", leave->reason));
        self->wanted = FALSE;
        lk_teardown_session (self);
        lk_set_state (self, LK_CONNECTION_STATE_DISCONNECTED);
      } else {
        lk_fail_session (self, FALSE, "server asked us to reconnect");
      }
      break;
    }
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_REFRESH_TOKEN:
      /* never logged */
      GST_OBJECT_LOCK (self);
      g_free (self->refresh_token);
      self->refresh_token = g_strdup (resp->refresh_token);
      GST_OBJECT_UNLOCK (self);
      break;
    case LKPROTO__SIGNAL_RESPONSE__MESSAGE_PONG_RESP:
      if (resp->pong_resp->last_ping_timestamp > 0)
        self->rtt_ms
            = g_get_real_time () / 1000 - resp->pong_resp->last_ping_timestamp;
      break;
    default:
      break;
  }
}

static void
lk_ws_message (
    SoupWebsocketConnection *ws, gint type, GBytes *message, LkConnection *self)
{
  g_autoptr (Lkproto__SignalResponse) resp = NULL;
  g_autoptr (GError) error = NULL;
  gsize size;
  const guint8 *data;

  if (ws != self->ws)
    return;
  self->last_rx_us = g_get_monotonic_time ();
  if (type != SOUP_WEBSOCKET_DATA_BINARY) {
    g_atomic_int_inc (&self->dropped_messages);
    GST_WARNING_OBJECT (self, "dropping a text signalling message");
    return;
  }
  data = g_bytes_get_data (message, &size);
  resp = lk_proto_unpack_response (data, size, &error);
  if (resp == NULL) {
    g_atomic_int_inc (&self->dropped_messages);
    GST_WARNING_OBJECT (self, "dropping message: %s", error->message);
    return;
  }
  lk_handle_response (self, resp);
}

static void
lk_ws_closed (SoupWebsocketConnection *ws, LkConnection *self)
{
  if (ws != self->ws)
    return;
  lk_fail_session (self, FALSE, "signalling WebSocket closed");
}

static void
lk_ws_error (SoupWebsocketConnection *ws, GError *error, LkConnection *self)
{
  GST_WARNING_OBJECT (self, "WebSocket error: %s", error->message);
}

static void
lk_ws_connected (GObject *source, GAsyncResult *res, gpointer user_data)
{
  LkHandle *handle = user_data;
  LkConnection *self;
  g_autoptr (GError) error = NULL;
  SoupWebsocketConnection *ws;
  SoupMessage *msg;

  ws = soup_session_websocket_connect_finish (
      SOUP_SESSION (source), res, &error);
  g_mutex_lock (&handle->lock);
  self = handle->self;
  g_mutex_unlock (&handle->lock);
  if (self == NULL
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_clear_object (&ws);
    lk_handle_unref (handle);
    return;
  }
  lk_handle_unref (handle);
  msg = g_object_get_data (source, "lk-msg");
  if (ws == NULL) {
    guint status = msg ? soup_message_get_status (msg) : 0;
    gchar *reason;

    g_object_set_data (source, "lk-msg", NULL);
    if ((status == 401 || status == 403) && self->join_with_refresh_token) {
      /* the server's refresh token has expired (e.g. after a long outage):
       * drop it and retry at once with the configured or minted token */
      GST_INFO_OBJECT (self,
          "refresh token refused (HTTP %u), retrying with "
          "the configured token",
          status);
      GST_OBJECT_LOCK (self);
      g_clear_pointer (&self->refresh_token, g_free);
      GST_OBJECT_UNLOCK (self);
      lk_source_clear (self, &self->reconnect_id);
      self->reconnect_id = lk_timeout_add (self, 0, lk_reconnect_timeout);
      return;
    }
    reason = g_strdup_printf ("WebSocket upgrade failed: HTTP %u: %s", status,
        error ? error->message : "?");
    lk_fail_session (self, status == 401 || status == 403, reason);
    g_free (reason);
    return;
  }
  g_object_set_data (source, "lk-msg", NULL);
  self->ws = ws;
  soup_websocket_connection_set_max_incoming_payload_size (ws, 4 * 1024 * 1024);
  g_signal_connect (ws, "message", G_CALLBACK (lk_ws_message), self);
  g_signal_connect (ws, "closed", G_CALLBACK (lk_ws_closed), self);
  g_signal_connect (ws, "error", G_CALLBACK (lk_ws_error), self);
  GST_DEBUG_OBJECT (self, "signalling connected, waiting for join");
}

static gboolean
lk_join_timeout (gpointer data)
{
  LkConnection *self = data;

  self->join_timeout_id = 0;
  lk_fail_session (self, FALSE, "no join response in time");
  return G_SOURCE_REMOVE;
}

static gchar *
lk_current_token (LkConnection *self, GError **error)
{
  gchar *token = NULL;

  GST_OBJECT_LOCK (self);
  self->join_with_refresh_token = self->refresh_token != NULL;
  if (self->refresh_token != NULL)
    token = g_strdup (self->refresh_token);
  else if (self->token != NULL && *self->token != '\0')
    token = g_strdup (self->token);
  else if (self->api_key != NULL && self->api_secret != NULL) {
    token = lk_token_mint (self->api_key, self->api_secret, self->identity,
        self->participant_name, self->room, NULL,
        g_get_real_time () / G_USEC_PER_SEC, 6 * 3600, error);
  } else {
    g_set_error (error, LK_ERROR, LK_ERROR_TOKEN,
        "no token: set \"token\", "
        "or \"api-key\", \"api-secret\", \"identity\" and \"room\"");
  }
  GST_OBJECT_UNLOCK (self);
  return token;
}

static void
lk_start_join (LkConnection *self, gpointer data)
{
  g_autofree gchar *token = NULL;
  g_autofree gchar *base = NULL;
  g_autofree gchar *uri = NULL;
  g_autofree gchar *auth = NULL;
  g_autoptr (GError) error = NULL;
  SoupMessage *msg;
  gsize len;
  gint protocol;

  lk_teardown_session (self);
  lk_source_clear (self, &self->reconnect_id);
  if (!self->wanted)
    return;
  token = lk_current_token (self, &error);
  if (token == NULL) {
    lk_fail_session (self, TRUE, error->message);
    return;
  }
  GST_OBJECT_LOCK (self);
  base = g_strdup (self->url ? self->url : "");
  protocol = self->protocol;
  GST_OBJECT_UNLOCK (self);
  if (g_str_has_prefix (base, "ws://"))
    uri = g_strconcat ("http://", base + 5, NULL);
  else if (g_str_has_prefix (base, "wss://"))
    uri = g_strconcat ("https://", base + 6, NULL);
  else
    uri = g_strdup (base);
  len = strlen (uri);
  while (len > 0 && uri[len - 1] == '/')
    uri[--len] = '\0';
  g_free (base);
  /* auto_subscribe: the server subscribes us to every track (the room is
   * one MatrixRTC slot); adaptive_stream off: no visibility reports needed */
  base = g_strdup_printf ("%s/rtc?auto_subscribe=1&adaptive_stream=0"
                          "&protocol=%d&version=" LK_CLIENT_VERSION "&os=linux",
      uri, protocol);
  msg = soup_message_new ("GET", base);
  if (msg == NULL) {
    lk_fail_session (self, TRUE, "the LiveKit URL is not valid");
    return;
  }
  auth = g_strconcat ("Bearer ", token, NULL);
  soup_message_headers_replace (
      soup_message_get_request_headers (msg), "Authorization", auth);
  lk_set_state (self, self->state == LK_CONNECTION_STATE_RECONNECTING
                          ? LK_CONNECTION_STATE_RECONNECTING
                          : LK_CONNECTION_STATE_CONNECTING);
  GST_INFO_OBJECT (self, "connecting to %s", uri);
  self->cancellable = g_cancellable_new ();
  g_object_set_data_full (
      G_OBJECT (self->session), "lk-msg", g_object_ref (msg), g_object_unref);
  soup_session_websocket_connect_async (self->session, msg, NULL, NULL,
      G_PRIORITY_DEFAULT, self->cancellable, lk_ws_connected,
      lk_handle_ref (self->handle));
  g_object_unref (msg);
  self->join_timeout_id
      = lk_timeout_add (self, LK_JOIN_TIMEOUT_S * 1000, lk_join_timeout);
}

/* ------------------------------------------------------------------ */
/* local track pads */

/* A removed or refused track's pad stays linked to the application's
 * payloader and swallows its buffers (upstream must not see not-linked). */
static gboolean
lk_local_track_dropping (GstPad *pad)
{
  LkLocalTrack *t = gst_pad_get_element_private (pad);

  return t != NULL
         && (g_atomic_int_get (&t->removed) || g_atomic_int_get (&t->refused));
}

static GstFlowReturn
lk_local_chain (GstPad *pad, GstObject *parent, GstBuffer *buffer)
{
  GstFlowReturn ret;

  /* Nothing leaves before the SFU's DTLS certificate has been checked
   * against the SDP (the SFU asks for a key frame when it needs one). */
  if (!g_atomic_int_get (&LK_CONNECTION (parent)->pub_verified)
      || lk_local_track_dropping (pad)) {
    gst_buffer_unref (buffer);
    return GST_FLOW_OK;
  }
  ret = gst_proxy_pad_chain_default (pad, parent, buffer);
  /* Between sessions the pad has no target: drop, do not stop upstream. */
  if (ret == GST_FLOW_NOT_LINKED
      || (ret == GST_FLOW_FLUSHING && !GST_PAD_IS_FLUSHING (pad)))
    ret = GST_FLOW_OK;
  return ret;
}

static GstFlowReturn
lk_local_chain_list (GstPad *pad, GstObject *parent, GstBufferList *list)
{
  GstFlowReturn ret;

  if (!g_atomic_int_get (&LK_CONNECTION (parent)->pub_verified)
      || lk_local_track_dropping (pad)) {
    gst_buffer_list_unref (list);
    return GST_FLOW_OK;
  }
  ret = gst_proxy_pad_chain_list_default (pad, parent, list);
  if (ret == GST_FLOW_NOT_LINKED
      || (ret == GST_FLOW_FLUSHING && !GST_PAD_IS_FLUSHING (pad)))
    ret = GST_FLOW_OK;
  return ret;
}

static gboolean
lk_local_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  gboolean sticky = GST_EVENT_IS_STICKY (event);
  gboolean res = gst_pad_event_default (pad, parent, event);

  /* Sticky events are kept and replayed to the next webrtcbin. */
  if (!res && sticky && !GST_PAD_IS_FLUSHING (pad))
    res = TRUE;
  return res;
}

static gboolean
lk_local_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  if (gst_pad_peer_query (
          GST_PAD (gst_proxy_pad_get_internal (GST_PROXY_PAD (pad))), query))
    return TRUE;
  return gst_pad_query_default (pad, parent, query);
}

GstPad *
lk_connection_add_track (LkConnection *self, const gchar *name,
    const gchar *kind, Lkproto__TrackSource source, const GstCaps *rtp_caps,
    guint width, guint height, gboolean encrypted)
{
  LkLocalTrack *t;
  g_autofree gchar *pad_name = NULL;

  g_return_val_if_fail (LK_IS_CONNECTION (self), NULL);
  g_return_val_if_fail (
      kind != NULL
          && (g_str_equal (kind, "audio") || g_str_equal (kind, "video")),
      NULL);
  g_return_val_if_fail (GST_IS_CAPS (rtp_caps), NULL);

  t = g_new0 (LkLocalTrack, 1);
  t->name = g_strdup (name ? name : kind);
  t->kind = g_strdup (kind);
  t->source = source;
  t->caps = gst_caps_copy (rtp_caps);
  t->width = width;
  t->height = height;
  t->encrypted = encrypted;
  g_mutex_lock (&self->tracks_lock);
  t->index = self->local_tracks->len;
  pad_name = g_strdup_printf ("sink_%u", t->index);
  t->ghost = gst_object_ref_sink (
      gst_ghost_pad_new_no_target (pad_name, GST_PAD_SINK));
  g_ptr_array_add (self->local_tracks, t);
  g_mutex_unlock (&self->tracks_lock);

  /* the track lives as long as the connection (local_tracks frees it) */
  gst_pad_set_element_private (t->ghost, t);
  gst_pad_set_chain_function (t->ghost, lk_local_chain);
  gst_pad_set_chain_list_function (t->ghost, lk_local_chain_list);
  gst_pad_set_event_function (t->ghost, lk_local_event);
  (void)lk_local_query;
  gst_pad_set_active (t->ghost, TRUE);
  gst_element_add_pad (GST_ELEMENT (self), t->ghost);
  lk_post (self->handle, lk_post_negotiate, NULL, NULL);
  return t->ghost;
}

/* Removes a removed track's sink pad from the bin once nothing upstream is
 * linked to it any more. */
static void
lk_remove_local_pad (LkConnection *self, gpointer data)
{
  GstPad *ghost = data;
  gboolean remove = FALSE;
  guint i;

  if (gst_pad_is_linked (ghost))
    return;
  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);

    if (t->ghost == ghost && t->removed && !t->pad_gone) {
      t->pad_gone = TRUE;
      remove = TRUE;
    }
  }
  g_mutex_unlock (&self->tracks_lock);
  if (remove) {
    GST_DEBUG_OBJECT (self, "removing pad %s", GST_PAD_NAME (ghost));
    lk_remove_pad (self, ghost);
  }
}

static void
lk_local_unlinked_cb (GstPad *pad, GstPad *peer, LkHandle *handle)
{
  lk_post (handle, lk_remove_local_pad, gst_object_ref (pad), gst_object_unref);
}

static void
lk_do_remove_track (LkConnection *self, gpointer data)
{
  GstPad *ghost = data;
  GstPad *webrtc_pad = NULL;
  gboolean found = FALSE;
  guint i;

  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);

    if (t->ghost == ghost && !t->removed) {
      /* from now on lk_local_chain() drops this track's buffers */
      g_atomic_int_set (&t->removed, TRUE);
      found = TRUE;
      if (t->webrtc_pad)
        webrtc_pad = gst_object_ref (t->webrtc_pad);
      gst_ghost_pad_set_target (GST_GHOST_PAD (t->ghost), NULL);
    }
  }
  g_mutex_unlock (&self->tracks_lock);
  if (!found)
    return;
  if (webrtc_pad != NULL) {
    GstWebRTCRTPTransceiver *trans = NULL;

    /* An inactive m-line makes the server unpublish the track. */
    g_object_get (webrtc_pad, "transceiver", &trans, NULL);
    if (trans != NULL) {
      g_object_set (trans, "direction",
          GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_INACTIVE, NULL);
      gst_object_unref (trans);
    }
    gst_object_unref (webrtc_pad);
    self->pub_offer_needed = TRUE;
    lk_pub_negotiate (self);
  }
  /* Removing a pad the application still pushes into would stop its
   * streaming thread ("not-linked"): the pad goes once it is unlinked. */
  g_signal_connect_data (ghost, "unlinked", G_CALLBACK (lk_local_unlinked_cb),
      lk_handle_ref (self->handle), lk_handle_closure_unref, 0);
  lk_remove_local_pad (self, ghost);
}

void
lk_connection_remove_track (LkConnection *self, GstPad *pad)
{
  g_return_if_fail (LK_IS_CONNECTION (self));
  g_return_if_fail (GST_IS_PAD (pad));

  lk_ensure_thread (self);
  lk_post (
      self->handle, lk_do_remove_track, gst_object_ref (pad), gst_object_unref);
}

typedef struct
{
  GstPad *pad;
  gboolean muted;
} LkMute;

static void
lk_mute_free (gpointer data)
{
  LkMute *m = data;

  gst_object_unref (m->pad);
  g_free (m);
}

static void
lk_do_set_muted (LkConnection *self, gpointer data)
{
  LkMute *m = data;
  gchar *sid = NULL;
  guint i;

  g_mutex_lock (&self->tracks_lock);
  for (i = 0; i < self->local_tracks->len; i++) {
    LkLocalTrack *t = g_ptr_array_index (self->local_tracks, i);

    if (t->ghost == m->pad) {
      t->muted = m->muted;
      sid = g_strdup (t->sid);
    }
  }
  g_mutex_unlock (&self->tracks_lock);
  if (sid != NULL) {
    Lkproto__SignalRequest req = LKPROTO__SIGNAL_REQUEST__INIT;
    Lkproto__MuteTrackRequest mute = LKPROTO__MUTE_TRACK_REQUEST__INIT;

    mute.sid = sid;
    mute.muted = m->muted;
    req.message_case = LKPROTO__SIGNAL_REQUEST__MESSAGE_MUTE;
    req.mute = &mute;
    lk_send (self, &req);
    g_free (sid);
  }
}

void
lk_connection_set_track_muted (LkConnection *self, GstPad *pad, gboolean muted)
{
  LkMute *m;

  g_return_if_fail (LK_IS_CONNECTION (self));
  g_return_if_fail (GST_IS_PAD (pad));

  m = g_new0 (LkMute, 1);
  m->pad = gst_object_ref (pad);
  m->muted = muted;
  lk_ensure_thread (self);
  lk_post (self->handle, lk_do_set_muted, m, lk_mute_free);
}

/* ------------------------------------------------------------------ */
/* thread, connect, disconnect */

static gpointer
lk_thread_func (gpointer data)
{
  LkConnection *self = data;
  GMainContext *context = g_main_context_ref (self->context);
  GMainLoop *loop = g_main_loop_ref (self->loop);
  SoupSession *session;

  g_main_context_push_thread_default (context);
  session = soup_session_new ();
  soup_session_set_timeout (session, 10);
  self->session = session;
  g_main_loop_run (loop);
  /* The last reference to the connection may have been dropped on this
   * thread (dispose quits the loop, finalize frees self): from here on,
   * only our own references are used, never self. */
  g_main_context_pop_thread_default (context);
  g_object_unref (session);
  g_main_loop_unref (loop);
  g_main_context_unref (context);
  return NULL;
}

static void
lk_ensure_thread (LkConnection *self)
{
  if (self->thread != NULL)
    return;
  self->loop = g_main_loop_new (self->context, FALSE);
  self->thread = g_thread_new ("lk-connection", lk_thread_func, self);
}

static void
lk_do_connect (LkConnection *self, gpointer data)
{
  self->wanted = TRUE;
  self->attempt = 0;
  if (self->state == LK_CONNECTION_STATE_CONNECTED
      || self->state == LK_CONNECTION_STATE_CONNECTING)
    return;
  lk_start_join (self, NULL);
}

void
lk_connection_connect (LkConnection *self)
{
  g_return_if_fail (LK_IS_CONNECTION (self));
  lk_ensure_thread (self);
  lk_post (self->handle, lk_do_connect, NULL, NULL);
}

typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean done;
} LkSync;

static void
lk_do_disconnect (LkConnection *self, gpointer data)
{
  LkSync *sync = data;

  self->wanted = FALSE;
  lk_source_clear (self, &self->reconnect_id);
  lk_send_leave (self);
  lk_teardown_session (self);
  /* the server's refresh token belongs to this session's room and URL */
  GST_OBJECT_LOCK (self);
  g_clear_pointer (&self->refresh_token, g_free);
  GST_OBJECT_UNLOCK (self);
  lk_set_state (self, LK_CONNECTION_STATE_DISCONNECTED);
  g_mutex_lock (&sync->lock);
  sync->done = TRUE;
  g_cond_signal (&sync->cond);
  g_mutex_unlock (&sync->lock);
}

void
lk_connection_disconnect (LkConnection *self)
{
  LkSync sync;

  g_return_if_fail (LK_IS_CONNECTION (self));
  if (self->thread == NULL)
    return;
  g_mutex_init (&sync.lock);
  g_cond_init (&sync.cond);
  sync.done = FALSE;
  if (g_main_context_is_owner (self->context)) {
    lk_do_disconnect (self, &sync);
  } else {
    lk_post (self->handle, lk_do_disconnect, &sync, NULL);
    g_mutex_lock (&sync.lock);
    while (!sync.done)
      g_cond_wait (&sync.cond, &sync.lock);
    g_mutex_unlock (&sync.lock);
  }
  g_mutex_clear (&sync.lock);
  g_cond_clear (&sync.cond);
}

LkConnectionState
lk_connection_get_state (LkConnection *self)
{
  g_return_val_if_fail (
      LK_IS_CONNECTION (self), LK_CONNECTION_STATE_DISCONNECTED);
  return self->state;
}

LkConnection *
lk_connection_new (const gchar *name)
{
  return g_object_new (LK_TYPE_CONNECTION, "name", name, NULL);
}

/* ------------------------------------------------------------------ */
/* GObject */

typedef struct
{
  GstElement *elem;
  gchar *message;
} LkErrorEvent;

static void
lk_error_event_free (gpointer data)
{
  LkErrorEvent *e = data;

  gst_object_unref (e->elem);
  g_free (e->message);
  g_free (e);
}

static void
lk_on_webrtc_error (LkConnection *self, gpointer data)
{
  LkErrorEvent *e = data;
  g_autofree gchar *reason = NULL;

  if (e->elem != self->pub && e->elem != self->sub)
    return;
  reason = g_strdup_printf ("%s: %s", GST_OBJECT_NAME (e->elem), e->message);
  lk_fail_session (self, FALSE, reason);
}

/* Errors inside our webrtcbins (e.g. sctpenc when the association goes
 * away) end the session and trigger a rejoin; they do not stop the
 * application's pipeline. */
static void
lk_connection_handle_message (GstBin *bin, GstMessage *message)
{
  LkConnection *self = LK_CONNECTION (bin);

  if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR) {
    GstObject *o = gst_object_ref (GST_MESSAGE_SRC (message));

    while (o != NULL) {
      GstObject *parent = gst_object_get_parent (o);

      if (parent == GST_OBJECT (bin)) {
        gst_object_unref (parent);
        break;
      }
      gst_object_unref (o);
      o = parent;
    }
    if (o != NULL && g_str_equal (G_OBJECT_TYPE_NAME (o), "GstWebRTCBin")) {
      GError *error = NULL;
      LkErrorEvent *e = g_new0 (LkErrorEvent, 1);

      gst_message_parse_error (message, &error, NULL);
      GST_WARNING_OBJECT (self, "error in %s: %s", GST_OBJECT_NAME (o),
          error ? error->message : "?");
      e->elem = GST_ELEMENT (o);
      e->message = g_strdup (error ? error->message : "error");
      g_clear_error (&error);
      lk_post (self->handle, lk_on_webrtc_error, e, lk_error_event_free);
      gst_message_unref (message);
      return;
    }
    gst_clear_object (&o);
  }
  GST_BIN_CLASS (lk_connection_parent_class)->handle_message (bin, message);
}

static GstStateChangeReturn
lk_connection_change_state (GstElement *element, GstStateChange transition)
{
  LkConnection *self = LK_CONNECTION (element);

  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    lk_connection_disconnect (self);
  return GST_ELEMENT_CLASS (lk_connection_parent_class)
      ->change_state (element, transition);
}

static void
lk_connection_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  LkConnection *self = LK_CONNECTION (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_URL:
      g_free (self->url);
      self->url = g_value_dup_string (value);
      /* a refresh token is only good for the URL and room it came from */
      g_clear_pointer (&self->refresh_token, g_free);
      break;
    case PROP_TOKEN:
      g_free (self->token);
      self->token = g_value_dup_string (value);
      g_clear_pointer (&self->refresh_token, g_free);
      break;
    case PROP_API_KEY:
      g_free (self->api_key);
      self->api_key = g_value_dup_string (value);
      /* a refresh token is only good for the URL and room it came from */
      g_clear_pointer (&self->refresh_token, g_free);
      break;
    case PROP_API_SECRET:
      g_free (self->api_secret);
      self->api_secret = g_value_dup_string (value);
      /* a refresh token is only good for the URL and room it came from */
      g_clear_pointer (&self->refresh_token, g_free);
      break;
    case PROP_IDENTITY:
      g_free (self->identity);
      self->identity = g_value_dup_string (value);
      /* a refresh token is only good for the URL and room it came from */
      g_clear_pointer (&self->refresh_token, g_free);
      break;
    case PROP_PARTICIPANT_NAME:
      g_free (self->participant_name);
      self->participant_name = g_value_dup_string (value);
      break;
    case PROP_ROOM:
      g_free (self->room);
      self->room = g_value_dup_string (value);
      /* a refresh token is only good for the URL and room it came from */
      g_clear_pointer (&self->refresh_token, g_free);
      break;
    case PROP_PROTOCOL:
      self->protocol = g_value_get_int (value);
      break;
    case PROP_ICE_SERVERS:
      g_strfreev (self->ice_servers);
      self->ice_servers = g_value_dup_boxed (value);
      break;
    case PROP_USE_SERVER_ICE_SERVERS:
      self->use_server_ice_servers = g_value_get_boolean (value);
      break;
    case PROP_LOCAL_ADDRESSES:
      g_strfreev (self->local_addresses);
      self->local_addresses = g_value_dup_boxed (value);
      break;
    case PROP_LATENCY:
      self->latency = g_value_get_uint (value);
      break;
    case PROP_RECONNECT:
      self->reconnect = g_value_get_boolean (value);
      break;
    case PROP_TRACK_GRACE_MS:
      self->grace_ms = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
lk_connection_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  LkConnection *self = LK_CONNECTION (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_URL:
      g_value_set_string (value, self->url);
      break;
    case PROP_IDENTITY:
      g_value_set_string (value, self->identity);
      break;
    case PROP_PARTICIPANT_NAME:
      g_value_set_string (value, self->participant_name);
      break;
    case PROP_ROOM:
      g_value_set_string (value, self->room);
      break;
    case PROP_PROTOCOL:
      g_value_set_int (value, self->protocol);
      break;
    case PROP_ICE_SERVERS:
      g_value_set_boxed (value, self->ice_servers);
      break;
    case PROP_USE_SERVER_ICE_SERVERS:
      g_value_set_boolean (value, self->use_server_ice_servers);
      break;
    case PROP_LOCAL_ADDRESSES:
      g_value_set_boxed (value, self->local_addresses);
      break;
    case PROP_LATENCY:
      g_value_set_uint (value, self->latency);
      break;
    case PROP_RECONNECT:
      g_value_set_boolean (value, self->reconnect);
      break;
    case PROP_TRACK_GRACE_MS:
      g_value_set_uint (value, self->grace_ms);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_PARTICIPANT_SID:
      g_value_set_string (value, self->participant_sid);
      break;
    case PROP_RECONNECTS:
      g_value_set_uint (value, g_atomic_int_get (&self->reconnects));
      break;
    case PROP_FINGERPRINT_FAILURES:
      g_value_set_uint (value, g_atomic_int_get (&self->fingerprint_failures));
      break;
    case PROP_DROPPED_MESSAGES:
      g_value_set_uint (value, g_atomic_int_get (&self->dropped_messages));
      break;
    case PROP_FINGERPRINTS_VERIFIED:
      g_value_set_uint (value, g_atomic_int_get (&self->fingerprints_verified));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
lk_quit (LkConnection *self, gpointer data)
{
  self->wanted = FALSE;
  lk_source_clear (self, &self->reconnect_id);
  lk_teardown_session (self);
  g_main_loop_quit (self->loop);
}

static void
lk_connection_dispose (GObject *object)
{
  LkConnection *self = LK_CONNECTION (object);

  if (self->thread != NULL) {
    if (g_thread_self () == self->thread) {
      lk_quit (self, NULL);
      g_thread_unref (self->thread);
    } else {
      lk_post (self->handle, lk_quit, NULL, NULL);
      g_thread_join (self->thread);
    }
    self->thread = NULL;
  }
  if (self->handle != NULL) {
    g_mutex_lock (&self->handle->lock);
    self->handle->self = NULL;
    g_mutex_unlock (&self->handle->lock);
  }
  G_OBJECT_CLASS (lk_connection_parent_class)->dispose (object);
}

static void
lk_connection_finalize (GObject *object)
{
  LkConnection *self = LK_CONNECTION (object);

  g_free (self->url);
  g_free (self->token);
  g_free (self->api_key);
  g_free (self->api_secret);
  g_free (self->identity);
  g_free (self->participant_name);
  g_free (self->room);
  g_strfreev (self->ice_servers);
  g_strfreev (self->local_addresses);
  g_free (self->refresh_token);
  g_free (self->participant_sid);
  g_ptr_array_unref (self->local_tracks);
  g_hash_table_unref (self->outputs);
  g_hash_table_unref (self->participants);
  g_hash_table_unref (self->mid_to_track);
  g_ptr_array_unref (self->unresolved_pads);
  g_ptr_array_unref (self->pub_remote_cands);
  g_ptr_array_unref (self->sub_remote_cands);
  g_ptr_array_unref (self->pub_local_cands);
  g_ptr_array_unref (self->watched_transports);
  g_ptr_array_unref (self->data_channels);
  g_clear_pointer (&self->loop, g_main_loop_unref);
  g_main_context_unref (self->context);
  lk_handle_unref (self->handle);
  g_mutex_clear (&self->tracks_lock);
  G_OBJECT_CLASS (lk_connection_parent_class)->finalize (object);
}

static void
lk_connection_init (LkConnection *self)
{
  self->protocol = LK_DEFAULT_PROTOCOL;
  self->latency = LK_DEFAULT_LATENCY;
  self->reconnect = TRUE;
  self->grace_ms = LK_DEFAULT_GRACE_MS;
  self->context = g_main_context_new ();
  self->handle = g_new0 (LkHandle, 1);
  self->handle->ref = 1;
  g_mutex_init (&self->handle->lock);
  self->handle->self = self;
  self->handle->context = g_main_context_ref (self->context);
  g_mutex_init (&self->tracks_lock);
  self->local_tracks = g_ptr_array_new_with_free_func (lk_local_track_free);
  self->outputs
      = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, lk_output_free);
  self->participants = g_hash_table_new_full (
      g_str_hash, g_str_equal, NULL, lk_participant_free);
  self->mid_to_track
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->unresolved_pads = g_ptr_array_new_with_free_func (gst_object_unref);
  self->pub_remote_cands = g_ptr_array_new_with_free_func (lk_candidate_free);
  self->sub_remote_cands = g_ptr_array_new_with_free_func (lk_candidate_free);
  self->pub_local_cands = g_ptr_array_new_with_free_func (lk_candidate_free);
  self->watched_transports = g_ptr_array_new_with_free_func (gst_object_unref);
  self->data_channels = g_ptr_array_new_with_free_func (g_object_unref);
  self->ping_interval = 5;
  self->ping_timeout = 15;
}

static void
lk_connection_class_init (LkConnectionClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (
      lk_connection_debug, "lkconnection", 0, "LiveKit connection");

  gobject_class->set_property = lk_connection_set_property;
  gobject_class->get_property = lk_connection_get_property;
  gobject_class->dispose = lk_connection_dispose;
  gobject_class->finalize = lk_connection_finalize;
  element_class->change_state = lk_connection_change_state;
  GST_BIN_CLASS (klass)->handle_message = lk_connection_handle_message;

  g_object_class_install_property (gobject_class, PROP_URL,
      g_param_spec_string ("url", "URL",
          "LiveKit server URL (ws:// or "
          "wss://)",
          NULL, rw));
  g_object_class_install_property (gobject_class, PROP_TOKEN,
      g_param_spec_string ("token", "Token",
          "LiveKit access token (JWT); "
          "write-only",
          NULL, G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_API_KEY,
      g_param_spec_string ("api-key", "API key",
          "API key to mint a token "
          "locally when no token is set; write-only",
          NULL, G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_API_SECRET,
      g_param_spec_string ("api-secret", "API secret",
          "API secret to mint a "
          "token locally; write-only",
          NULL, G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_IDENTITY,
      g_param_spec_string ("identity", "Identity",
          "Participant identity "
          "for a locally minted token",
          NULL, rw));
  g_object_class_install_property (gobject_class, PROP_PARTICIPANT_NAME,
      g_param_spec_string ("participant-name", "Participant name",
          "Display name for a locally minted token", NULL, rw));
  g_object_class_install_property (gobject_class, PROP_ROOM,
      g_param_spec_string (
          "room", "Room", "Room for a locally minted token", NULL, rw));
  g_object_class_install_property (gobject_class, PROP_PROTOCOL,
      g_param_spec_int ("protocol", "Protocol",
          "LiveKit signalling protocol "
          "version announced (3: subscriber primary, no transceiver reuse)",
          1, 17, LK_DEFAULT_PROTOCOL, rw));
  g_object_class_install_property (gobject_class, PROP_ICE_SERVERS,
      g_param_spec_boxed ("ice-servers", "ICE servers",
          "stun:// and "
          "turn(s):// URIs used instead of the server's",
          G_TYPE_STRV, rw));
  g_object_class_install_property (gobject_class, PROP_USE_SERVER_ICE_SERVERS,
      g_param_spec_boolean ("use-server-ice-servers", "Use server ICE servers",
          "Also use the ICE servers of the JoinResponse (note: webrtcbin's "
          "nice agent logs TURN URIs, credentials included, at DEBUG level)",
          FALSE, rw));
  g_object_class_install_property (gobject_class, PROP_LOCAL_ADDRESSES,
      g_param_spec_boxed ("local-addresses", "Local addresses",
          "Local IP addresses for ICE (e.g. 127.0.0.1 on loopback); empty: "
          "all interfaces",
          G_TYPE_STRV, rw));
  g_object_class_install_property (gobject_class, PROP_LATENCY,
      g_param_spec_uint ("latency", "Latency", "Jitter buffer latency (ms)", 0,
          10000, LK_DEFAULT_LATENCY, rw));
  g_object_class_install_property (gobject_class, PROP_RECONNECT,
      g_param_spec_boolean ("reconnect", "Reconnect",
          "Rejoin with back-off "
          "after failures",
          TRUE, rw));
  g_object_class_install_property (gobject_class, PROP_TRACK_GRACE_MS,
      g_param_spec_uint ("track-grace-ms", "Track grace",
          "How long a "
          "remote track's pad waits for the track to come back (ms)",
          0, 600000, LK_DEFAULT_GRACE_MS, rw));
  g_object_class_install_property (gobject_class, PROP_STATE,
      g_param_spec_enum ("state", "State", "Connection state",
          LK_TYPE_CONNECTION_STATE, LK_CONNECTION_STATE_DISCONNECTED, ro));
  g_object_class_install_property (gobject_class, PROP_PARTICIPANT_SID,
      g_param_spec_string ("participant-sid", "Participant sid",
          "Our participant sid in the current session", NULL, ro));
  g_object_class_install_property (gobject_class, PROP_RECONNECTS,
      g_param_spec_uint (
          "reconnects", "Reconnects", "Rejoins so far", 0, G_MAXUINT, 0, ro));
  g_object_class_install_property (gobject_class, PROP_FINGERPRINT_FAILURES,
      g_param_spec_uint ("fingerprint-failures", "Fingerprint failures",
          "Remote DTLS certificates that did not match the SDP", 0, G_MAXUINT,
          0, ro));
  g_object_class_install_property (gobject_class, PROP_DROPPED_MESSAGES,
      g_param_spec_uint ("dropped-messages", "Dropped messages",
          "Malformed signalling messages dropped", 0, G_MAXUINT, 0, ro));
  g_object_class_install_property (gobject_class, PROP_FINGERPRINTS_VERIFIED,
      g_param_spec_uint ("fingerprints-verified", "Fingerprints verified",
          "Remote DTLS certificates checked against the SDP and accepted "
          "(one per webrtcbin and session)",
          0, G_MAXUINT, 0, ro));

  /**
   * LkConnection::participant-added:
   * @identity: the participant's identity
   * @sid: the participant's sid
   */
  signals[SIGNAL_PARTICIPANT_ADDED] = g_signal_new ("participant-added",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  signals[SIGNAL_PARTICIPANT_REMOVED] = g_signal_new ("participant-removed",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * LkConnection::track-added:
   * @identity: the publisher's identity
   * @participant_sid: the publisher's sid
   * @track_sid: the track sid
   * @source: "camera", "microphone", "screen_share", ...
   * @kind: "audio" or "video"
   * @encrypted: whether the track is end-to-end encrypted
   * @pad: the bin's src pad carrying the track's RTP
   */
  signals[SIGNAL_TRACK_ADDED] = g_signal_new ("track-added",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 7, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
      G_TYPE_STRING, G_TYPE_STRING, G_TYPE_BOOLEAN, GST_TYPE_PAD);
  signals[SIGNAL_TRACK_REMOVED] = g_signal_new ("track-removed",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 3, G_TYPE_STRING, G_TYPE_STRING, GST_TYPE_PAD);
  /**
   * LkConnection::track-published:
   * @name: the local track's name
   * @track_sid: the sid the server gave it
   */
  signals[SIGNAL_TRACK_PUBLISHED] = g_signal_new ("track-published",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * LkConnection::track-unpublished:
   * @name: the local track's name
   * @track_sid: its sid
   *
   * The server stopped one of our tracks (it is not republished until the
   * next rejoin).
   */
  signals[SIGNAL_TRACK_UNPUBLISHED] = g_signal_new ("track-unpublished",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * LkConnection::track-muted:
   * @identity: the publisher's identity
   * @track_sid: the track sid
   * @muted: whether the publisher muted it now
   */
  signals[SIGNAL_TRACK_MUTED] = g_signal_new ("track-muted",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 3, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_BOOLEAN);
  /**
   * LkConnection::track-refused:
   * @name: the local track's name
   * @reason: why ("not allowed", "limit exceeded", "no TrackPublished from
   *   the server in time", ...)
   *
   * The server will not publish one of our tracks (e.g. the token lacks
   * canPublish): its buffers are dropped from now on and the other tracks
   * are negotiated without it. A warning message is also posted. The track
   * stays refused across rejoins; remove it with
   * lk_connection_remove_track().
   */
  signals[SIGNAL_TRACK_REFUSED] = g_signal_new ("track-refused",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * LkConnection::local-track-muted:
   * @name: the local track's name
   * @track_sid: its sid
   * @muted: whether the server muted it now
   *
   * The server muted or unmuted one of our tracks (an admin's remote mute;
   * with protocol 3 also a server-side unpublish). Media keeps flowing; the
   * application decides whether to stop sending.
   */
  signals[SIGNAL_LOCAL_TRACK_MUTED] = g_signal_new ("local-track-muted",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 3, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_BOOLEAN);
}
