/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:gstmatrixrtccallbin
 * @title: GstMatrixRtcCallBin
 * @short_description: the call of matrixrtcbin, matrixrtcsrc and
 *   matrixrtcsink
 *
 * Runs one MatrixRTC call participant: on READY→PAUSED a thread of the
 * element's own logs in, joins the room and the slot, asks the token
 * service of our transport for a LiveKit token and connects our own SFU
 * connection; remote members are followed through the membership (the
 * source of truth for who is shown), each subscribed on the SFU its
 * membership names (one extra connection per other SFU). LiveKit
 * participants are mapped to members by their identity. With
 * e2ee-mode=per-member the device's Olm machine (gstmatrixrtckeys.c) sends
 * our media key to the members and installs theirs. PAUSED→READY leaves
 * the call (our delayed leave is sent) and drops the transports.
 *
 * Element messages on the bus:
 * - `matrixrtc-member-joined` / `matrixrtc-member-left`: user-id,
 *   device-id, member-id (and reason on leave);
 * - `matrixrtc-key-changed`: a media key was set: kind "passphrase"; kind
 *   "own" with key-index (our per-member key, rotated as members come and
 *   go); kind "member" with user-id, device-id, key-index (a member's key
 *   arrived over Olm);
 * - `matrixrtc-decrypt-failure`: user-id, device-id, member-id, kind,
 *   key-index, reason;
 * - with e2ee-mode=slot-shared, `matrixrtc-key-changed` kind "slot" with
 *   key-index and event-id (the slot's key event now in use), and
 *   `matrixrtc-key-status`: status ("no-key": the slot names no key yet;
 *   "waiting": we lack the Megolm session of the key event it names and keep
 *   sending key requests, media stays dropped; "ready": the key is in use
 *   again; "invalid": the named event is no usable key, a moderator must
 *   rotate), event-id (the key event, when one is named) and message.
 *   Never key bytes.
 *
 * With e2ee-mode=slot-shared, a moderator joining a slot that names no key
 * sends the first one (opening the slot if there is none yet).
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstmatrixrtccallbin.h"
#include "lktoken.h"
#include "mrtcolmslotkey.h"

GST_DEBUG_CATEGORY (gst_matrix_rtc_call_bin_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_call_bin_debug

enum
{
  PROP_0,
  PROP_STATS,
};

typedef struct
{
  GRecMutex lock; /* members, tracks, connections, counters, call state */

  LkConnection *own;
  GHashTable *connections; /* service url -> LkConnection (other SFUs) */
  GHashTable *members;     /* LiveKit identity -> MrtcMember */
  GPtrArray *tracks;       /* GstMatrixRtcRemoteTrack */
  GHashTable *counters;    /* name -> GUINT_TO_POINTER */
  guint next_connection;

  /* The call thread and what it owns. */
  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;
  GstMatrixRtcSettings settings;
  MrtcClient *client;
  MrtcSession *session;
  gchar *room_id;
  gchar *own_service_url;
  gchar *own_identity;
  gulong session_handlers[3];
  gboolean decode;
  gboolean joined;
  gboolean eos; /* the streams were ended */

  /* The e2ee mode in force: auto until the call thread resolved it (under
   * e2ee_lock, signalled on e2ee_cond). */
  GMutex e2ee_lock;
  GCond e2ee_cond;
  GstMatrixRtcE2eeMode e2ee_effective;
  gboolean e2ee_given_up; /* the call stopped or failed before resolving */
} GstMatrixRtcCallBinPrivate;

G_DEFINE_ABSTRACT_TYPE_WITH_CODE (GstMatrixRtcCallBin, gst_matrix_rtc_call_bin,
    GST_TYPE_MATRIX_RTC_BASE_BIN,
    G_ADD_PRIVATE (GstMatrixRtcCallBin)
        GST_DEBUG_CATEGORY_INIT (gst_matrix_rtc_call_bin_debug,
            "matrixrtccallbin", 0, "MatrixRTC call"));

#define PRIV(self)                                                             \
  ((GstMatrixRtcCallBinPrivate *)                                              \
          gst_matrix_rtc_call_bin_get_instance_private (                       \
              GST_MATRIX_RTC_CALL_BIN (self)))

static void on_track_added (LkConnection *conn, const gchar *identity,
    const gchar *participant_sid, const gchar *track_sid, const gchar *source,
    const gchar *kind, gboolean encrypted, GstPad *pad,
    GstMatrixRtcCallBin *self);
static void on_track_removed (LkConnection *conn, const gchar *identity,
    const gchar *track_sid, GstPad *pad, GstMatrixRtcCallBin *self);

/* ------------------------------------------------------------------ */
/* remote tracks */

GstMatrixRtcRemoteTrack *
gst_matrix_rtc_remote_track_ref (GstMatrixRtcRemoteTrack *track)
{
  g_atomic_int_inc (&track->refcount);
  return track;
}

void
gst_matrix_rtc_remote_track_unref (GstMatrixRtcRemoteTrack *track)
{
  if (!g_atomic_int_dec_and_test (&track->refcount))
    return;
  g_clear_object (&track->connection);
  gst_clear_object (&track->lk_pad);
  g_free (track->identity);
  g_free (track->source);
  g_free (track->kind);
  g_clear_pointer (&track->member, mrtc_member_unref);
  g_clear_pointer (&track->elements, g_ptr_array_unref);
  gst_clear_object (&track->chain_sink);
  gst_clear_object (&track->chain_src);
  gst_clear_object (&track->framedec);
  gst_clear_object (&track->out_pad);
  g_free (track);
}

/* Drops the connection's buffers while the track is not exposed, so that an
 * unlinked pad never stops the connection's streaming thread. */
static GstPadProbeReturn
drop_unexposed_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstMatrixRtcRemoteTrack *track = user_data;

  if (!g_atomic_int_get (&track->exposed))
    return GST_PAD_PROBE_DROP;
  return GST_PAD_PROBE_OK;
}

void
gst_matrix_rtc_call_bin_count (GstMatrixRtcCallBin *self, const gchar *counter)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  guint n;

  g_rec_mutex_lock (&priv->lock);
  n = GPOINTER_TO_UINT (g_hash_table_lookup (priv->counters, counter));
  g_hash_table_insert (
      priv->counters, g_strdup (counter), GUINT_TO_POINTER (n + 1));
  g_rec_mutex_unlock (&priv->lock);
}

void
gst_matrix_rtc_call_bin_set_decode (GstMatrixRtcCallBin *self, gboolean decode)
{
  g_atomic_int_set (&PRIV (self)->decode, decode);
}

gboolean
gst_matrix_rtc_call_bin_get_decode (GstMatrixRtcCallBin *self)
{
  return g_atomic_int_get (&PRIV (self)->decode);
}

LkConnection *
gst_matrix_rtc_call_bin_get_own_connection (GstMatrixRtcCallBin *self)
{
  return PRIV (self)->own;
}

/* The mode the settings give before the room is known: auto stays auto
 * unless a passphrase decides it. */
static GstMatrixRtcE2eeMode
settings_e2ee_mode (const GstMatrixRtcSettings *s)
{
  if (s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_AUTO && s->passphrase != NULL
      && *s->passphrase != '\0')
    return GST_MATRIX_RTC_E2EE_MODE_PASSPHRASE;
  return s->e2ee_mode;
}

static void
set_e2ee_mode (
    GstMatrixRtcCallBin *self, GstMatrixRtcE2eeMode mode, gboolean given_up)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);

  g_mutex_lock (&priv->e2ee_lock);
  priv->e2ee_effective = mode;
  priv->e2ee_given_up = given_up;
  g_cond_broadcast (&priv->e2ee_cond);
  g_mutex_unlock (&priv->e2ee_lock);
}

GstMatrixRtcE2eeMode
gst_matrix_rtc_call_bin_get_e2ee_mode (GstMatrixRtcCallBin *self)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  GstMatrixRtcE2eeMode mode;

  g_mutex_lock (&priv->e2ee_lock);
  mode = priv->e2ee_effective;
  g_mutex_unlock (&priv->e2ee_lock);
  return mode;
}

GstMatrixRtcE2eeMode
gst_matrix_rtc_call_bin_wait_e2ee_mode (
    GstMatrixRtcCallBin *self, GstPad *pad, guint timeout_ms)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  gint64 deadline
      = g_get_monotonic_time () + timeout_ms * G_TIME_SPAN_MILLISECOND;
  GstMatrixRtcE2eeMode mode;

  g_mutex_lock (&priv->e2ee_lock);
  while (priv->e2ee_effective == GST_MATRIX_RTC_E2EE_MODE_AUTO
         && !priv->e2ee_given_up && (pad == NULL || !GST_PAD_IS_FLUSHING (pad))
         && g_get_monotonic_time () < deadline) {
    /* Short steps: a pad going flushing does not signal the condition. */
    g_cond_wait_until (&priv->e2ee_cond, &priv->e2ee_lock,
        MIN (
            deadline, g_get_monotonic_time () + 100 * G_TIME_SPAN_MILLISECOND));
  }
  mode = priv->e2ee_effective;
  g_mutex_unlock (&priv->e2ee_lock);
  return mode;
}

/* Whether the room has m.room.encryption. */
static gboolean
room_is_encrypted (GstMatrixRtcCallBin *self, GError **error)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  g_autoptr (JsonArray) state
      = mrtc_client_get_room_state (priv->client, priv->room_id, error);
  guint i;

  if (state == NULL)
    return FALSE;
  for (i = 0; i < json_array_get_length (state); i++) {
    JsonNode *node = json_array_get_element (state, i);
    JsonObject *ev
        = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
    JsonObject *content = ev != NULL && json_object_has_member (ev, "content")
                                  && JSON_NODE_HOLDS_OBJECT (
                                      json_object_get_member (ev, "content"))
                              ? json_object_get_object_member (ev, "content")
                              : NULL;

    if (g_strcmp0 (mrtc_json_get_string (ev, "type"), "m.room.encryption") == 0
        && g_strcmp0 (mrtc_json_get_string (ev, "state_key"), "") == 0
        && mrtc_json_get_string (content, "algorithm") != NULL)
      return TRUE;
  }
  return FALSE;
}

void
gst_matrix_rtc_call_bin_get_media_config (
    GstMatrixRtcCallBin *self, GstMatrixRtcMediaConfig *config)
{
  GstMatrixRtcSettings s;

  gst_matrix_rtc_base_bin_get_settings (GST_MATRIX_RTC_BASE_BIN (self), &s);
  GstMatrixRtcE2eeMode mode = gst_matrix_rtc_call_bin_get_e2ee_mode (self);

  memset (config, 0, sizeof (*config));
  config->decode = gst_matrix_rtc_call_bin_get_decode (self);
  /* Still unresolved (the call failed or is slow): encrypt without a key,
   * which drops and counts rather than sending clear media. */
  config->encrypt = mode != GST_MATRIX_RTC_E2EE_MODE_NONE;
  config->passphrase = mode == GST_MATRIX_RTC_E2EE_MODE_PASSPHRASE
                           ? g_strdup (s.passphrase)
                           : NULL;
  config->video_bitrate_kbps = s.video_bitrate_kbps;
  config->audio_bitrate_kbps = s.audio_bitrate_kbps;
  config->video_codec = s.video_codec;
  gst_matrix_rtc_settings_clear (&s);
}

void
gst_matrix_rtc_media_config_clear (GstMatrixRtcMediaConfig *config)
{
  if (config->passphrase != NULL) {
    memset (config->passphrase, 0, strlen (config->passphrase));
    g_clear_pointer (&config->passphrase, g_free);
  }
}

static void
post_member_message (GstMatrixRtcCallBin *self, const gchar *name,
    MrtcMember *member, const gchar *reason)
{
  GstStructure *s = gst_structure_new (name, "user-id", G_TYPE_STRING,
      member->user_id, "device-id", G_TYPE_STRING, member->device_id,
      "member-id", G_TYPE_STRING, member->member_id, NULL);

  if (reason != NULL)
    gst_structure_set (s, "reason", G_TYPE_STRING, reason, NULL);
  gst_element_post_message (
      GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
}

/* Exposes the tracks of @identity that wait for their member (call lock not
 * held). */
static void
expose_tracks_of (GstMatrixRtcCallBin *self, const gchar *identity)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  g_autoptr (GPtrArray) todo = g_ptr_array_new_with_free_func (
      (GDestroyNotify)gst_matrix_rtc_remote_track_unref);
  guint i;

  g_rec_mutex_lock (&priv->lock);
  for (i = 0; i < priv->tracks->len; i++) {
    GstMatrixRtcRemoteTrack *t = g_ptr_array_index (priv->tracks, i);

    if (g_strcmp0 (t->identity, identity) == 0 && !t->exposed && !t->removed)
      g_ptr_array_add (todo, gst_matrix_rtc_remote_track_ref (t));
  }
  g_rec_mutex_unlock (&priv->lock);
  for (i = 0; i < todo->len; i++)
    gst_matrix_rtc_receive_expose (self, g_ptr_array_index (todo, i));
}

static void
hide_tracks_of (GstMatrixRtcCallBin *self, const gchar *identity)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  g_autoptr (GPtrArray) todo = g_ptr_array_new_with_free_func (
      (GDestroyNotify)gst_matrix_rtc_remote_track_unref);
  guint i;

  g_rec_mutex_lock (&priv->lock);
  for (i = 0; i < priv->tracks->len; i++) {
    GstMatrixRtcRemoteTrack *t = g_ptr_array_index (priv->tracks, i);

    if (identity == NULL || g_strcmp0 (t->identity, identity) == 0)
      g_ptr_array_add (todo, gst_matrix_rtc_remote_track_ref (t));
  }
  g_rec_mutex_unlock (&priv->lock);
  for (i = 0; i < todo->len; i++)
    gst_matrix_rtc_receive_hide (self, g_ptr_array_index (todo, i));
}

GPtrArray *
gst_matrix_rtc_call_bin_dup_framedecs (
    GstMatrixRtcCallBin *self, const gchar *identity)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  GPtrArray *out = g_ptr_array_new_with_free_func (gst_object_unref);
  guint i;

  g_rec_mutex_lock (&priv->lock);
  for (i = 0; i < priv->tracks->len; i++) {
    GstMatrixRtcRemoteTrack *t = g_ptr_array_index (priv->tracks, i);

    if (t->framedec != NULL
        && (identity == NULL || g_strcmp0 (t->identity, identity) == 0))
      g_ptr_array_add (out, gst_object_ref (t->framedec));
  }
  g_rec_mutex_unlock (&priv->lock);
  return out;
}

/* The member of a LiveKit identity (a new reference), or NULL. */
MrtcMember *gst_matrix_rtc_call_bin_lookup_member (
    GstMatrixRtcCallBin *self, const gchar *identity);

MrtcMember *
gst_matrix_rtc_call_bin_lookup_member (
    GstMatrixRtcCallBin *self, const gchar *identity)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  MrtcMember *m;

  g_rec_mutex_lock (&priv->lock);
  m = g_hash_table_lookup (priv->members, identity);
  if (m != NULL)
    mrtc_member_ref (m);
  g_rec_mutex_unlock (&priv->lock);
  return m;
}

static void
on_track_added (LkConnection *conn, const gchar *identity,
    const gchar *participant_sid, const gchar *track_sid, const gchar *source,
    const gchar *kind, gboolean encrypted, GstPad *pad,
    GstMatrixRtcCallBin *self)
{
  GstMatrixRtcCallBinClass *klass = GST_MATRIX_RTC_CALL_BIN_GET_CLASS (self);
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  GstMatrixRtcRemoteTrack *t;
  gboolean present;

  if (!klass->can_receive)
    return;
  GST_INFO_OBJECT (self, "track %s (%s %s%s) of %s on %s", track_sid, kind,
      source, encrypted ? ", encrypted" : "", identity, GST_OBJECT_NAME (conn));
  t = g_new0 (GstMatrixRtcRemoteTrack, 1);
  t->refcount = 1;
  t->bin = self;
  t->connection = g_object_ref (conn);
  t->lk_pad = gst_object_ref (pad);
  t->identity = g_strdup (identity);
  t->source = g_strdup (source);
  t->kind = g_strdup (kind);
  t->encrypted = encrypted;
  if (encrypted)
    gst_matrix_rtc_call_bin_count (self, "remote-tracks-encrypted");
  t->drop_probe = gst_pad_add_probe (pad,
      GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
      drop_unexposed_probe, gst_matrix_rtc_remote_track_ref (t),
      (GDestroyNotify)gst_matrix_rtc_remote_track_unref);

  g_rec_mutex_lock (&priv->lock);
  g_ptr_array_add (priv->tracks, gst_matrix_rtc_remote_track_ref (t));
  present = g_hash_table_contains (priv->members, identity);
  g_rec_mutex_unlock (&priv->lock);
  gst_matrix_rtc_call_bin_count (self, "remote-tracks");

  /* The connection holds the first packets until the pad is linked here. */
  if (present)
    gst_matrix_rtc_receive_expose (self, t);
  else
    GST_INFO_OBJECT (
        self, "%s is not a member (yet): track %s waits", identity, track_sid);
  gst_matrix_rtc_remote_track_unref (t);
}

static void
on_track_removed (LkConnection *conn, const gchar *identity,
    const gchar *track_sid, GstPad *pad, GstMatrixRtcCallBin *self)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  GstMatrixRtcRemoteTrack *found = NULL;
  guint i;

  g_rec_mutex_lock (&priv->lock);
  for (i = 0; i < priv->tracks->len; i++) {
    GstMatrixRtcRemoteTrack *t = g_ptr_array_index (priv->tracks, i);

    if (t->lk_pad == pad) {
      found = g_ptr_array_steal_index (priv->tracks, i); /* its reference */
      found->removed = TRUE;
      break;
    }
  }
  g_rec_mutex_unlock (&priv->lock);
  if (found == NULL)
    return;
  GST_INFO_OBJECT (self, "track %s of %s removed", track_sid, identity);
  gst_matrix_rtc_receive_hide (self, found);
  gst_pad_remove_probe (pad, found->drop_probe);
  gst_matrix_rtc_remote_track_unref (found);
}

/* ------------------------------------------------------------------ */
/* the call thread */

static gboolean
is_loopback_url (const gchar *url)
{
  g_autoptr (GUri) uri = url ? g_uri_parse (url, G_URI_FLAGS_NONE, NULL) : NULL;
  const gchar *host = uri ? g_uri_get_host (uri) : NULL;

  return host != NULL
         && (g_str_has_prefix (host, "127.") || g_str_equal (host, "localhost")
             || g_str_equal (host, "::1") || g_str_equal (host, "[::1]"));
}

static void
configure_connection (GstMatrixRtcCallBin *self, LkConnection *conn,
    const gchar *url, const GstMatrixRtcSettings *s)
{
  g_autoptr (GPtrArray) ice = g_ptr_array_new_with_free_func (g_free);

  if (s->stun_server != NULL && *s->stun_server != '\0')
    g_ptr_array_add (ice, g_strdup (s->stun_server));
  if (s->turn_server != NULL && *s->turn_server != '\0')
    g_ptr_array_add (ice, g_strdup (s->turn_server));
  g_ptr_array_add (ice, NULL);
  if (ice->len > 1)
    g_object_set (conn, "ice-servers", (gchar **)ice->pdata, NULL);
  /* An SFU on loopback is only reachable over loopback, and ICE leaves the
   * loopback interface out unless told. */
  if (is_loopback_url (url)) {
    const gchar *local[] = { "127.0.0.1", NULL };

    g_object_set (conn, "local-addresses", local, NULL);
  }
  g_object_set (conn, "url", url, NULL);
}

static void
store_result (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GAsyncResult **)user_data = g_object_ref (result);
}

/* A LiveKit token from @service for our membership (blocking, on the call
 * thread), with the OpenID token @openid_given (NULL: asked here). */
static gboolean
request_token (GstMatrixRtcCallBin *self, const gchar *service,
    JsonObject *openid_given, gchar **url, gchar **jwt, GError **error)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  g_autoptr (JsonObject) openid = NULL;
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  g_autoptr (SoupSession) soup = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  LkTokenRequest req = { 0 };
  g_autofree gchar *member_id = NULL;
  gboolean ok;

  openid = openid_given != NULL
               ? json_object_ref (openid_given)
               : mrtc_client_request_openid_token (priv->client, error);
  if (openid == NULL)
    return FALSE;
  member_id = mrtc_session_dup_member_id (priv->session);
  req.room_id = g_strdup (priv->room_id);
  req.slot_id = g_strdup (gst_matrix_rtc_settings_get_slot (&priv->settings));
  req.openid.access_token
      = g_strdup (mrtc_json_get_string (openid, "access_token"));
  req.openid.token_type
      = g_strdup (mrtc_json_get_string (openid, "token_type"));
  req.openid.matrix_server_name
      = g_strdup (mrtc_json_get_string (openid, "matrix_server_name"));
  mrtc_json_get_int (openid, "expires_in", &req.openid.expires_in);
  req.member_id = g_strdup (member_id);
  req.user_id = g_strdup (mrtc_client_get_user_id (priv->client));
  req.device_id = g_strdup (mrtc_client_get_device_id (priv->client));

  g_main_context_push_thread_default (ctx);
  soup = soup_session_new_with_options ("timeout", 15, NULL);
  if (mrtc_session_get_joined_format (priv->session)
      == MRTC_MEMBERSHIP_FORMAT_LEGACY) {
    /* Legacy members are "@user:server:DEVICE" on the SFU, as the token
     * service's legacy endpoint names them (as Element Call asks). */
    g_autofree gchar *body = lk_token_sfu_get_body (&req);
    g_autofree gchar *uri = g_strconcat (service,
        g_str_has_suffix (service, "/") ? "sfu/get" : "/sfu/get", NULL);
    g_autoptr (SoupMessage) msg = soup_message_new ("POST", uri);
    g_autoptr (GBytes) reply = NULL;

    if (msg == NULL) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
          "Invalid transport URL %s", service);
      ok = FALSE;
    } else {
      GBytes *bytes = g_bytes_new (body, strlen (body));

      soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
      g_bytes_unref (bytes);
      reply = soup_session_send_and_read (soup, msg, NULL, error);
      ok = reply != NULL
           && lk_token_parse_reply (soup_message_get_status (msg),
               g_bytes_get_data (reply, NULL), g_bytes_get_size (reply), url,
               jwt, error);
    }
  } else {
    lk_token_request_async (soup, service, &req, NULL, store_result, &result);
    while (result == NULL)
      g_main_context_iteration (ctx, TRUE);
    ok = lk_token_request_finish (result, url, jwt, error);
  }
  g_clear_object (&soup);
  g_main_context_pop_thread_default (ctx);
  lk_token_request_clear (&req);
  return ok;
}

/* The connection that carries the tracks of members publishing on
 * @service (ours, or a new one for another SFU). Call thread. */
static void
ensure_connection (GstMatrixRtcCallBin *self, const gchar *service)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  g_autofree gchar *url = NULL, *jwt = NULL, *name = NULL;
  g_autoptr (GError) error = NULL;
  LkConnection *conn;

  if (service == NULL || g_strcmp0 (service, priv->own_service_url) == 0)
    return;
  g_rec_mutex_lock (&priv->lock);
  conn = g_hash_table_lookup (priv->connections, service);
  name = g_strdup_printf ("sfu%u", ++priv->next_connection);
  g_rec_mutex_unlock (&priv->lock);
  if (conn != NULL)
    return;
  if (!request_token (self, service, NULL, &url, &jwt, &error)) {
    GST_ELEMENT_WARNING (self, RESOURCE, OPEN_READ,
        ("Could not get a token from the transport %s of a member", service),
        ("%s", error->message));
    gst_matrix_rtc_call_bin_count (self, "transport-failures");
    return;
  }
  GST_INFO_OBJECT (
      self, "subscribing on %s (%s) for members of %s", url, name, service);
  conn = lk_connection_new (name);
  configure_connection (self, conn, url, &priv->settings);
  g_object_set (conn, "token", jwt, NULL);
  g_signal_connect (conn, "track-added", G_CALLBACK (on_track_added), self);
  g_signal_connect (conn, "track-removed", G_CALLBACK (on_track_removed), self);
  g_rec_mutex_lock (&priv->lock);
  g_hash_table_insert (
      priv->connections, g_strdup (service), gst_object_ref (conn));
  g_rec_mutex_unlock (&priv->lock);
  gst_bin_add (GST_BIN (self), GST_ELEMENT (conn));
  gst_element_sync_state_with_parent (GST_ELEMENT (conn));
  lk_connection_connect (conn);
}

static gboolean
is_own_member (GstMatrixRtcCallBin *self, MrtcMember *m)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);

  if (g_strcmp0 (m->identity, priv->own_identity) == 0)
    return TRUE;
  return g_strcmp0 (m->user_id, mrtc_client_get_user_id (priv->client)) == 0
         && g_strcmp0 (m->device_id, mrtc_client_get_device_id (priv->client))
                == 0;
}

static void update_key_members (GstMatrixRtcCallBin *self);

typedef struct
{
  GstMatrixRtcCallBin *self;
  MrtcMember *member;
  gchar *reason;
  gboolean left;
} MemberEvent;

static void
member_event_free (MemberEvent *ev)
{
  gst_object_unref (ev->self);
  mrtc_member_unref (ev->member);
  g_free (ev->reason);
  g_free (ev);
}

/* The LiveKit identities a member may have: the one its membership implies,
 * and the hashed one the token service's MSC4195 endpoint gives. */
static void
member_identities (MrtcMember *m, gchar *ids[2])
{
  ids[0] = g_strdup (m->identity);
  ids[1] = m->user_id && m->device_id && m->member_id
               ? mrtc_sticky_identity (m->user_id, m->device_id, m->member_id)
               : NULL;
  if (g_strcmp0 (ids[0], ids[1]) == 0)
    g_clear_pointer (&ids[1], g_free);
}

static gboolean
handle_member_event (gpointer data)
{
  MemberEvent *ev = data;
  GstMatrixRtcCallBin *self = ev->self;
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  MrtcMember *m = ev->member;
  gchar *ids[2];
  gboolean known;
  guint i;

  if (m->identity == NULL || is_own_member (self, m))
    return G_SOURCE_REMOVE;
  if (priv->settings.e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_PER_MEMBER)
    update_key_members (self);
  member_identities (m, ids);
  if (ev->left) {
    g_rec_mutex_lock (&priv->lock);
    known = g_hash_table_remove (priv->members, ids[0]);
    if (ids[1] != NULL)
      g_hash_table_remove (priv->members, ids[1]);
    g_rec_mutex_unlock (&priv->lock);
    if (known) {
      GST_INFO_OBJECT (self, "member %s (%s) left: %s", m->member_id,
          m->identity, GST_STR_NULL (ev->reason));
      post_member_message (self, "matrixrtc-member-left", m, ev->reason);
      for (i = 0; i < 2; i++) {
        if (ids[i] != NULL)
          hide_tracks_of (self, ids[i]);
      }
    }
    g_free (ids[0]);
    g_free (ids[1]);
    return G_SOURCE_REMOVE;
  }
  g_rec_mutex_lock (&priv->lock);
  known = g_hash_table_contains (priv->members, ids[0]);
  for (i = 0; i < 2; i++) {
    if (ids[i] != NULL)
      g_hash_table_replace (
          priv->members, g_strdup (ids[i]), mrtc_member_ref (m));
  }
  g_rec_mutex_unlock (&priv->lock);
  if (!known) {
    GST_INFO_OBJECT (self, "member %s (%s %s) joined, on %s", m->member_id,
        m->user_id, m->identity,
        GST_STR_NULL (mrtc_member_get_livekit_service_url (m)));
    post_member_message (self, "matrixrtc-member-joined", m, NULL);
  }
  ensure_connection (self, mrtc_member_get_livekit_service_url (m));
  for (i = 0; i < 2; i++) {
    if (ids[i] != NULL)
      expose_tracks_of (self, ids[i]);
  }
  g_free (ids[0]);
  g_free (ids[1]);
  return G_SOURCE_REMOVE;
}

static void
queue_member_event (GstMatrixRtcCallBin *self, MrtcMember *member,
    const gchar *reason, gboolean left)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  MemberEvent *ev = g_new0 (MemberEvent, 1);

  ev->self = gst_object_ref (self);
  ev->member = mrtc_member_ref (member);
  ev->reason = g_strdup (reason);
  ev->left = left;
  g_main_context_invoke_full (priv->context, G_PRIORITY_DEFAULT,
      handle_member_event, ev, (GDestroyNotify)member_event_free);
}

static void
on_member_joined (
    MrtcSession *session, MrtcMember *member, GstMatrixRtcCallBin *self)
{
  queue_member_event (self, member, NULL, FALSE);
}

static void
on_member_left (MrtcSession *session, MrtcMember *member, const gchar *reason,
    GstMatrixRtcCallBin *self)
{
  queue_member_event (self, member, reason, TRUE);
}

static void
on_left (MrtcSession *session, const gchar *reason, GstMatrixRtcCallBin *self)
{
  GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
      ("Our membership of the call ended (%s)", GST_STR_NULL (reason)), (NULL));
}

static MrtcMembershipFormat
session_format (GstMatrixRtcMembershipFormat format)
{
  switch (format) {
    case GST_MATRIX_RTC_MEMBERSHIP_FORMAT_LEGACY:
      return MRTC_MEMBERSHIP_FORMAT_LEGACY;
    case GST_MATRIX_RTC_MEMBERSHIP_FORMAT_STICKY:
      return MRTC_MEMBERSHIP_FORMAT_STICKY;
    default:
      return MRTC_MEMBERSHIP_FORMAT_AUTO;
  }
}

/* Our transport: the token-service property, else a LiveKit URL set
 * directly, else the homeserver's first LiveKit transport. */
static gchar *
choose_service (GstMatrixRtcCallBin *self, GError **error)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  const GstMatrixRtcSettings *s = &priv->settings;
  g_autoptr (JsonArray) transports = NULL;
  guint i;

  if (s->token_service != NULL && *s->token_service != '\0')
    return g_strdup (s->token_service);
  if (s->livekit_url != NULL && *s->livekit_url != '\0')
    return g_strdup (s->livekit_url);
  transports = mrtc_client_discover_transports (priv->client, error);
  if (transports == NULL)
    return NULL;
  for (i = 0; i < json_array_get_length (transports); i++) {
    JsonNode *node = json_array_get_element (transports, i);
    JsonObject *t
        = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
    const gchar *url = mrtc_json_get_string (t, "livekit_service_url");

    if (g_strcmp0 (mrtc_json_get_string (t, "type"), "livekit") == 0
        && url != NULL)
      return g_strdup (url);
  }
  g_set_error (error, MRTC_SESSION_ERROR, MRTC_SESSION_ERROR_NO_TRANSPORT,
      "The homeserver names no LiveKit transport; set token-service or "
      "livekit-url");
  return NULL;
}

/* The LiveKit room a token service gives a call (see lk-jwt-service). */
static gchar *
livekit_room_alias (const gchar *room_id, const gchar *slot_id)
{
  const gchar *parts[] = { room_id, slot_id, NULL };
  g_autofree gchar *json = mrtc_json_string_array_go (parts);
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  guint8 digest[32];
  gsize len = sizeof (digest);
  gchar *b64;

  g_checksum_update (sum, (const guchar *)json, strlen (json));
  g_checksum_get_digest (sum, digest, &len);
  b64 = g_base64_encode (digest, len);
  while (*b64 != '\0' && b64[strlen (b64) - 1] == '=')
    b64[strlen (b64) - 1] = '\0';
  return b64;
}

/* The members (ourselves included) our media key goes to. */
static void
update_key_members (GstMatrixRtcCallBin *self)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  g_autoptr (GPtrArray) members = NULL;
  g_autoptr (GPtrArray) joined = g_ptr_array_new ();
  guint i;

  if (priv->session == NULL)
    return;
  members = mrtc_session_dup_members (priv->session);
  for (i = 0; members != NULL && i < members->len; i++) {
    MrtcMember *m = g_ptr_array_index (members, i);

    if (m->joined && m->identity != NULL)
      g_ptr_array_add (joined, m);
  }
  gst_matrix_rtc_keys_update_members (self, joined);
}

/* mrtc_session_start() and mrtc_session_join() on a thread of their own
 * (see call_setup()). */
typedef struct
{
  MrtcSession *session;
  GError *error;
  gint done; /* atomic */
} JoinTask;

static gpointer
join_thread_func (gpointer data)
{
  JoinTask *join = data;

  if (mrtc_session_start (join->session, &join->error))
    mrtc_session_join (join->session, &join->error);
  g_atomic_int_set (&join->done, TRUE);
  return NULL;
}

/* Opens our own SFU connection as soon as the join in progress chose our
 * member id (and membership format), which the token names. */
static gboolean
connect_own (
    GstMatrixRtcCallBin *self, gboolean direct, JoinTask *join, GError **error)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  const GstMatrixRtcSettings *s = &priv->settings;
  g_autofree gchar *member_id = NULL, *url = NULL, *jwt = NULL;
  g_autoptr (JsonObject) claims = NULL, openid = NULL;

  /* Needs no member id: asked while the session reads the room. */
  if (!direct) {
    openid = mrtc_client_request_openid_token (priv->client, error);
    if (openid == NULL)
      return FALSE;
  }
  /* The join sets them on the client's thread before its first request:
   * a short wait, bounded by the join's end. */
  while ((member_id = mrtc_session_dup_member_id (priv->session)) == NULL
         && !g_atomic_int_get (&join->done))
    g_usleep (G_TIME_SPAN_MILLISECOND);
  if (member_id == NULL) {
    g_set_error (error, MRTC_SESSION_ERROR, MRTC_SESSION_ERROR_STATE,
        "the join chose no member id");
    return FALSE;
  }
  GST_DEBUG_OBJECT (
      self, "joining as member %s; asking for a token", member_id);
  if (direct) {
    g_autofree gchar *room = livekit_room_alias (
        priv->room_id, gst_matrix_rtc_settings_get_slot (s));

    if (mrtc_session_get_joined_format (priv->session)
        == MRTC_MEMBERSHIP_FORMAT_STICKY)
      priv->own_identity
          = mrtc_sticky_identity (mrtc_client_get_user_id (priv->client),
              mrtc_client_get_device_id (priv->client), member_id);
    else
      priv->own_identity
          = mrtc_legacy_identity (mrtc_client_get_user_id (priv->client),
              mrtc_client_get_device_id (priv->client));
    configure_connection (self, priv->own, s->livekit_url, s);
    if (s->livekit_token != NULL && *s->livekit_token != '\0')
      g_object_set (priv->own, "token", s->livekit_token, NULL);
    else
      g_object_set (priv->own, "api-key", s->livekit_api_key, "api-secret",
          s->livekit_api_secret, "identity", priv->own_identity, "room", room,
          NULL);
  } else {
    if (!request_token (self, priv->own_service_url, openid, &url, &jwt, error))
      return FALSE;
    claims = lk_token_peek_claims (jwt, NULL);
    priv->own_identity = g_strdup (mrtc_json_get_string (claims, "sub"));
    configure_connection (self, priv->own, url, s);
    g_object_set (priv->own, "token", jwt, NULL);
  }
  GST_INFO_OBJECT (self, "our LiveKit identity: %s", priv->own_identity);
  lk_connection_connect (priv->own);
  return TRUE;
}

/* The DTLS certificate all the webrtcbins of a process share is generated
 * when the first DTLS element is made: an RSA key, a few hundred ms on a
 * busy machine, on the way to the first media unless made before. */
static gpointer
warm_dtls_func (gpointer data)
{
  GstElement *dtls = gst_element_factory_make ("dtlsdec", NULL);

  if (dtls != NULL)
    gst_object_unref (gst_object_ref_sink (dtls));
  return NULL;
}

/* The warm-up thread is joined when a call element stops, so that a
 * process that exits right after never tears OpenSSL down under it. */
static GMutex warm_dtls_lock;
static GThread *warm_dtls_thread;
static gboolean warm_dtls_started;

static void
warm_dtls_certificate (void)
{
  g_mutex_lock (&warm_dtls_lock);
  if (!warm_dtls_started) {
    warm_dtls_started = TRUE;
    warm_dtls_thread = g_thread_new ("matrixrtc-dtls", warm_dtls_func, NULL);
  }
  g_mutex_unlock (&warm_dtls_lock);
}

static void
warm_dtls_certificate_wait (void)
{
  GThread *thread;

  g_mutex_lock (&warm_dtls_lock);
  thread = g_steal_pointer (&warm_dtls_thread);
  g_mutex_unlock (&warm_dtls_lock);
  if (thread != NULL)
    g_thread_join (thread);
}

static gboolean
call_setup (GstMatrixRtcCallBin *self, GError **error)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  GstMatrixRtcCallBinClass *klass = GST_MATRIX_RTC_CALL_BIN_GET_CLASS (self);
  const GstMatrixRtcSettings *s = &priv->settings;
  MrtcSessionConfig config;
  g_autoptr (GPtrArray) members = NULL;
  JoinTask join = { 0 };
  GThread *join_thread;
  GError *connect_error = NULL;
  gboolean direct, connected;
  guint i;

  priv->client = mrtc_client_new (s->homeserver);
  if (s->access_token != NULL && *s->access_token != '\0') {
    if (!mrtc_client_login_token (
            priv->client, s->access_token, s->device_id, error))
      return FALSE;
  } else if (!mrtc_client_login_password (
                 priv->client, s->user_id, s->password, s->device_id, error)) {
    return FALSE;
  }
  /* Made while we join the room and the call (not during the login: a
   * homeserver on the same machine is busy hashing the password then). */
  warm_dtls_certificate ();
  /* (The session fetches /versions at its start.) */
  priv->room_id = mrtc_client_join_room (priv->client, s->room, error);
  if (priv->room_id == NULL)
    return FALSE;
  /* e2ee-mode=auto as Element Call: a passphrase was resolved at start;
   * otherwise per-member keys in an encrypted room, else none. The publish
   * chains wait for this (gst_matrix_rtc_call_bin_wait_e2ee_mode()). */
  if (priv->settings.e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_AUTO) {
    GError *state_error = NULL;
    gboolean encrypted = room_is_encrypted (self, &state_error);

    if (state_error != NULL) {
      g_propagate_error (error, state_error);
      return FALSE;
    }
    priv->settings.e2ee_mode = encrypted ? GST_MATRIX_RTC_E2EE_MODE_PER_MEMBER
                                         : GST_MATRIX_RTC_E2EE_MODE_NONE;
  }
  GST_INFO_OBJECT (self, "e2ee mode in force: %s",
      gst_matrix_rtc_e2ee_mode_nick (priv->settings.e2ee_mode));
  if (s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_SLOT_SHARED) {
    GError *state_error = NULL;

    if (!room_is_encrypted (self, &state_error)) {
      if (state_error != NULL)
        g_propagate_error (error, state_error);
      else
        g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
            "e2ee-mode=slot-shared needs an encrypted room (the slot's key "
            "is a Megolm-encrypted room event) and %s has no "
            "m.room.encryption",
            priv->room_id);
      return FALSE;
    }
  }
  /* The device's keys go up before the sync loop starts (session start). */
  if ((s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_PER_MEMBER
          || s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_SLOT_SHARED)
      && !gst_matrix_rtc_keys_start (
          self, priv->client, s->crypto_store, error))
    return FALSE;
  if (s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_SLOT_SHARED)
    gst_matrix_rtc_keys_use_slot_key (
        self, priv->room_id, gst_matrix_rtc_settings_get_slot (s));
  set_e2ee_mode (self, s->e2ee_mode, FALSE);
  priv->own_service_url = choose_service (self, error);
  if (priv->own_service_url == NULL)
    return FALSE;
  direct = (s->token_service == NULL || *s->token_service == '\0')
           && s->livekit_url != NULL && *s->livekit_url != '\0';
  GST_INFO_OBJECT (self, "logged in as %s (%s), room %s, transport %s",
      mrtc_client_get_user_id (priv->client),
      mrtc_client_get_device_id (priv->client), priv->room_id,
      priv->own_service_url);

  priv->session = mrtc_session_new (
      priv->client, priv->room_id, gst_matrix_rtc_settings_get_slot (s));
  priv->session_handlers[0] = g_signal_connect (
      priv->session, "member-joined", G_CALLBACK (on_member_joined), self);
  priv->session_handlers[1] = g_signal_connect (
      priv->session, "member-updated", G_CALLBACK (on_member_joined), self);
  priv->session_handlers[2] = g_signal_connect (
      priv->session, "member-left", G_CALLBACK (on_member_left), self);
  g_signal_connect (priv->session, "left", G_CALLBACK (on_left), self);
  mrtc_session_config_init (&config);
  config.format = session_format (s->membership_format);
  config.delayed_leave_ms = s->leave_delay_ms;
  config.delayed_leave_restart_ms = MAX (1000, s->leave_delay_ms / 4);
  g_free (config.call_intent);
  config.call_intent = g_strdup (klass->can_publish ? "video" : NULL);
  config.transport = json_object_new ();
  json_object_set_string_member (config.transport, "type", "livekit");
  json_object_set_string_member (
      config.transport, "livekit_service_url", priv->own_service_url);
  mrtc_session_set_config (priv->session, &config);
  mrtc_session_config_clear (&config);
  /* The session reads the room and our membership goes out (the delayed
   * leave, then the member event) on a thread of their own while the token
   * service is asked and our SFU connection opens: they only share our
   * member id, chosen as the join starts. */
  join.session = priv->session;
  join_thread = g_thread_new ("matrixrtc-join", join_thread_func, &join);
  connected = connect_own (self, direct, &join, &connect_error);
  /* Our per-member media key is made and sent while the membership goes
   * out: the publisher drops our frames until it has one, and dropped key
   * frames delay everybody's first picture of us. */
  if (connected && s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_PER_MEMBER) {
    g_autofree gchar *member_id = mrtc_session_dup_member_id (priv->session);

    connected = gst_matrix_rtc_keys_join (
        self, priv->room_id, member_id, &connect_error);
    if (connected)
      update_key_members (self);
  }
  g_thread_join (join_thread);
  if (join.error != NULL) {
    g_clear_error (&connect_error);
    g_propagate_error (error, join.error);
    return FALSE;
  }
  g_rec_mutex_lock (&priv->lock);
  priv->joined = TRUE;
  g_rec_mutex_unlock (&priv->lock);
  if (!connected) {
    g_propagate_error (error, connect_error);
    return FALSE;
  }
  if (s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_PER_MEMBER) {
    /* now that we are a member */
    update_key_members (self);
  } else if (s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_SLOT_SHARED) {
    if (!gst_matrix_rtc_keys_join (self, priv->room_id, NULL, error))
      return FALSE;
    gst_matrix_rtc_keys_ensure_slot_key (self, priv->session);
  }

  if (s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_PASSPHRASE) {
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (
            GST_OBJECT (self), gst_structure_new ("matrixrtc-key-changed",
                                   "kind", G_TYPE_STRING, "passphrase", NULL)));
  }

  /* The members already there (later ones come as signals). */
  members = mrtc_session_dup_members (priv->session);
  for (i = 0; members != NULL && i < members->len; i++) {
    MrtcMember *m = g_ptr_array_index (members, i);

    if (m->joined)
      queue_member_event (self, m, NULL, FALSE);
  }
  return TRUE;
}

static gboolean
call_setup_cb (gpointer data)
{
  GstMatrixRtcCallBin *self = data;
  g_autoptr (GError) error = NULL;

  if (!call_setup (self, &error)) {
    /* Waiting publish chains go on encrypted without a key (dropping). */
    g_mutex_lock (&PRIV (self)->e2ee_lock);
    PRIV (self)->e2ee_given_up = TRUE;
    g_cond_broadcast (&PRIV (self)->e2ee_cond);
    g_mutex_unlock (&PRIV (self)->e2ee_lock);
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ_WRITE,
        ("Could not join the MatrixRTC call: %s", error->message), (NULL));
  }
  return G_SOURCE_REMOVE;
}

static gpointer
call_thread_func (gpointer data)
{
  GstMatrixRtcCallBin *self = data;
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);

  g_main_context_push_thread_default (priv->context);
  g_main_loop_run (priv->loop);
  g_main_context_pop_thread_default (priv->context);
  return NULL;
}

static gboolean
gst_matrix_rtc_call_bin_start (
    GstMatrixRtcBaseBin *base, const GstMatrixRtcSettings *settings)
{
  GstMatrixRtcCallBin *self = GST_MATRIX_RTC_CALL_BIN (base);
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);

  gst_matrix_rtc_settings_copy (&priv->settings, settings);
  priv->settings.e2ee_mode = settings_e2ee_mode (&priv->settings);
  set_e2ee_mode (self, priv->settings.e2ee_mode, FALSE);
  GST_DEBUG_OBJECT (self, "e2ee mode at start: %s",
      gst_matrix_rtc_e2ee_mode_nick (priv->settings.e2ee_mode));
  g_rec_mutex_lock (&priv->lock);
  priv->eos = FALSE;
  priv->context = g_main_context_new ();
  g_rec_mutex_unlock (&priv->lock);
  priv->loop = g_main_loop_new (priv->context, FALSE);
  priv->thread = g_thread_new ("matrixrtc-call", call_thread_func, self);
  g_main_context_invoke (priv->context, call_setup_cb, self);
  return TRUE;
}

static gboolean
call_leave_cb (gpointer data)
{
  GstMatrixRtcCallBin *self = data;
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  g_autoptr (GError) error = NULL;
  guint i;

  if (priv->session != NULL) {
    for (i = 0; i < G_N_ELEMENTS (priv->session_handlers); i++) {
      if (priv->session_handlers[i] != 0)
        g_signal_handler_disconnect (priv->session, priv->session_handlers[i]);
      priv->session_handlers[i] = 0;
    }
    g_signal_handlers_disconnect_by_data (priv->session, self);
    if (priv->joined && !mrtc_session_leave (priv->session, NULL, &error))
      GST_WARNING_OBJECT (self, "leaving: %s", error->message);
    mrtc_session_stop (priv->session);
  }
  g_main_loop_quit (priv->loop);
  return G_SOURCE_REMOVE;
}

static void
gst_matrix_rtc_call_bin_stop (GstMatrixRtcBaseBin *base)
{
  GstMatrixRtcCallBin *self = GST_MATRIX_RTC_CALL_BIN (base);
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  g_autoptr (GPtrArray) conns = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;
  guint i;

  g_mutex_lock (&priv->e2ee_lock);
  priv->e2ee_given_up = TRUE;
  g_cond_broadcast (&priv->e2ee_cond);
  g_mutex_unlock (&priv->e2ee_lock);
  warm_dtls_certificate_wait ();
  /* No slot key rotation after we leave. */
  gst_matrix_rtc_keys_stop_slot_key (self);
  if (priv->thread != NULL) {
    g_main_context_invoke (priv->context, call_leave_cb, self);
    g_thread_join (priv->thread);
    priv->thread = NULL;
  }
  g_clear_pointer (&priv->loop, g_main_loop_unref);
  g_rec_mutex_lock (&priv->lock);
  g_clear_pointer (&priv->context, g_main_context_unref);
  g_rec_mutex_unlock (&priv->lock);
  gst_matrix_rtc_keys_stop (self);
  g_clear_object (&priv->session);
  g_clear_object (&priv->client);

  hide_tracks_of (self, NULL);
  g_rec_mutex_lock (&priv->lock);
  /* Each track's drop probe holds a reference to the track, and the track
   * to the connection whose pad carries the probe: remove the probes (as
   * "track-removed" does), or the connections never go. */
  for (i = 0; i < priv->tracks->len; i++) {
    GstMatrixRtcRemoteTrack *t = g_ptr_array_index (priv->tracks, i);

    t->removed = TRUE;
    gst_pad_remove_probe (t->lk_pad, t->drop_probe);
  }
  g_ptr_array_set_size (priv->tracks, 0);
  g_hash_table_remove_all (priv->members);
  g_hash_table_iter_init (&iter, priv->connections);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (conns, value);
  g_hash_table_steal_all (priv->connections);
  priv->joined = FALSE;
  g_rec_mutex_unlock (&priv->lock);
  for (i = 0; i < conns->len; i++) {
    GstElement *conn = g_ptr_array_index (conns, i);

    g_signal_handlers_disconnect_by_data (conn, self);
    gst_element_set_state (conn, GST_STATE_NULL);
    gst_bin_remove (GST_BIN (self), conn);
    gst_object_unref (conn);
  }
  g_clear_pointer (&priv->room_id, g_free);
  g_clear_pointer (&priv->own_service_url, g_free);
  g_clear_pointer (&priv->own_identity, g_free);
  gst_matrix_rtc_settings_clear (&priv->settings);
}

/* ------------------------------------------------------------------ */
/* element */

static GstStateChangeReturn
gst_matrix_rtc_call_bin_change_state (
    GstElement *element, GstStateChange transition)
{
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    gst_matrix_rtc_publish_flush (GST_MATRIX_RTC_CALL_BIN (element));
  ret = GST_ELEMENT_CLASS (gst_matrix_rtc_call_bin_parent_class)
            ->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;
  /* A call is live: nothing to preroll. */
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED
      || transition == GST_STATE_CHANGE_PLAYING_TO_PAUSED)
    ret = GST_STATE_CHANGE_NO_PREROLL;
  return ret;
}

gboolean
gst_matrix_rtc_call_bin_run_later (GstMatrixRtcCallBin *self, guint ms,
    GSourceFunc func, gpointer data, GDestroyNotify notify)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  GSource *source;

  g_rec_mutex_lock (&priv->lock);
  if (priv->context == NULL || priv->eos) {
    g_rec_mutex_unlock (&priv->lock);
    if (notify != NULL)
      notify (data);
    return FALSE;
  }
  source = g_timeout_source_new (ms);
  g_source_set_callback (source, func, data, notify);
  g_source_attach (source, priv->context);
  g_source_unref (source);
  g_rec_mutex_unlock (&priv->lock);
  return TRUE;
}

void
gst_matrix_rtc_call_bin_finish (GstMatrixRtcCallBin *self, guint32 seqnum)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  GstIterator *it;
  GValue item = G_VALUE_INIT;
  GstMessage *msg;

  g_rec_mutex_lock (&priv->lock);
  if (priv->eos) {
    g_rec_mutex_unlock (&priv->lock);
    return;
  }
  priv->eos = TRUE;
  g_rec_mutex_unlock (&priv->lock);
  GST_INFO_OBJECT (self, "ending the streams");
  /* The connections never end their remote tracks (they outlive
   * reconnects): end our outputs here. */
  it = gst_element_iterate_src_pads (GST_ELEMENT (self));
  while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstEvent *eos = gst_event_new_eos ();

    if (seqnum != GST_SEQNUM_INVALID)
      gst_event_set_seqnum (eos, seqnum);
    gst_pad_push_event (g_value_get_object (&item), eos);
    g_value_reset (&item);
  }
  gst_iterator_free (it);
  /* Our SFU connections hold network sinks that never see EOS: the bin
   * itself says it is done. */
  msg = gst_message_new_eos (GST_OBJECT (self));
  if (seqnum != GST_SEQNUM_INVALID)
    gst_message_set_seqnum (msg, seqnum);
  gst_element_post_message (GST_ELEMENT (self), msg);
}

static gboolean
gst_matrix_rtc_call_bin_send_event (GstElement *element, GstEvent *event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    gst_matrix_rtc_call_bin_finish (
        GST_MATRIX_RTC_CALL_BIN (element), gst_event_get_seqnum (event));
    gst_event_unref (event);
    return TRUE;
  }
  return GST_ELEMENT_CLASS (gst_matrix_rtc_call_bin_parent_class)
      ->send_event (element, event);
}

static void
gst_matrix_rtc_call_bin_handle_message (GstBin *bin, GstMessage *message)
{
  GstMatrixRtcCallBin *self = GST_MATRIX_RTC_CALL_BIN (bin);
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  const GstStructure *s = gst_message_get_structure (message);

  if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ELEMENT && s != NULL
      && gst_structure_has_name (s, "matrixrtc-frame-crypto-error")) {
    MrtcMember *member = NULL;
    const gchar *kind = NULL;
    guint i, key_index = 0;

    g_rec_mutex_lock (&priv->lock);
    for (i = 0; i < priv->tracks->len; i++) {
      GstMatrixRtcRemoteTrack *t = g_ptr_array_index (priv->tracks, i);

      if (t->framedec != NULL
          && GST_MESSAGE_SRC (message) == GST_OBJECT (t->framedec)) {
        member = t->member ? mrtc_member_ref (t->member) : NULL;
        kind = t->kind;
        break;
      }
    }
    g_rec_mutex_unlock (&priv->lock);
    if (member != NULL) {
      gst_structure_get_uint (s, "key-index", &key_index);
      gst_matrix_rtc_call_bin_count (self, "decrypt-failures");
      gst_element_post_message (GST_ELEMENT (self),
          gst_message_new_element (GST_OBJECT (self),
              gst_structure_new ("matrixrtc-decrypt-failure", "user-id",
                  G_TYPE_STRING, member->user_id, "device-id", G_TYPE_STRING,
                  member->device_id, "member-id", G_TYPE_STRING,
                  member->member_id, "kind", G_TYPE_STRING, kind, "key-index",
                  G_TYPE_UINT, key_index, "reason", G_TYPE_STRING,
                  gst_structure_get_string (s, "reason"), NULL)));
      mrtc_member_unref (member);
      gst_message_unref (message);
      return;
    }
  }
  GST_BIN_CLASS (gst_matrix_rtc_call_bin_parent_class)
      ->handle_message (bin, message);
}

static GstStructure *
make_stats (GstMatrixRtcCallBin *self)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);
  GstStructure *s;
  GHashTableIter iter;
  gpointer key, value;
  guint exposed = 0, i;

  g_rec_mutex_lock (&priv->lock);
  for (i = 0; i < priv->tracks->len; i++) {
    GstMatrixRtcRemoteTrack *t = g_ptr_array_index (priv->tracks, i);

    if (t->exposed)
      exposed++;
  }
  s = gst_structure_new ("application/x-matrixrtc-stats", "joined",
      G_TYPE_BOOLEAN, priv->joined, "members", G_TYPE_UINT,
      g_hash_table_size (priv->members), "connections", G_TYPE_UINT,
      g_hash_table_size (priv->connections) + 1, "own-connection-state",
      G_TYPE_INT, (gint)lk_connection_get_state (priv->own),
      "remote-tracks-current", G_TYPE_UINT, priv->tracks->len,
      "remote-tracks-shown", G_TYPE_UINT, exposed, "published-tracks",
      G_TYPE_UINT, gst_matrix_rtc_publish_count (self), "e2ee-mode",
      G_TYPE_STRING,
      gst_matrix_rtc_e2ee_mode_nick (
          gst_matrix_rtc_call_bin_get_e2ee_mode (self)),
      NULL);
  g_hash_table_iter_init (&iter, priv->counters);
  while (g_hash_table_iter_next (&iter, &key, &value))
    gst_structure_set (s, key, G_TYPE_UINT, GPOINTER_TO_UINT (value), NULL);
  g_rec_mutex_unlock (&priv->lock);
  /* Outside the call lock: it may drop the last reference of the slot key
   * (the call stopped meanwhile). */
  gst_matrix_rtc_keys_add_stats (self, s);
  return s;
}

static void
gst_matrix_rtc_call_bin_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  switch (prop_id) {
    case PROP_STATS:
      g_value_take_boxed (value, make_stats (GST_MATRIX_RTC_CALL_BIN (object)));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static gchar *
gst_matrix_rtc_call_bin_rotate_slot_key (GstMatrixRtcCallBin *self)
{
  g_autoptr (GError) error = NULL;
  gchar *event_id = gst_matrix_rtc_keys_rotate_slot_key (self, &error);

  if (event_id != NULL) {
    GST_INFO_OBJECT (self, "rotated the slot key: key event %s", event_id);
    return event_id;
  }
  if (g_error_matches (
          error, MRTC_OLM_SLOT_KEY_ERROR, MRTC_OLM_SLOT_KEY_ERROR_PERMISSION))
    GST_ELEMENT_WARNING (self, RESOURCE, NOT_AUTHORIZED,
        ("Cannot rotate the slot key: our user lacks the power level to "
         "change the slot (a moderator must rotate)"),
        ("%s", error->message));
  else
    GST_ELEMENT_WARNING (self, RESOURCE, FAILED,
        ("Cannot rotate the slot key: %s", error->message), (NULL));
  return NULL;
}

static GstPad *
gst_matrix_rtc_call_bin_request_new_pad (GstElement *element,
    GstPadTemplate *templ, const gchar *name, const GstCaps *caps)
{
  return gst_matrix_rtc_publish_request_pad (
      GST_MATRIX_RTC_CALL_BIN (element), templ, name, caps);
}

static void
gst_matrix_rtc_call_bin_release_pad (GstElement *element, GstPad *pad)
{
  gst_matrix_rtc_publish_release_pad (GST_MATRIX_RTC_CALL_BIN (element), pad);
}

static void
gst_matrix_rtc_call_bin_constructed (GObject *object)
{
  GstMatrixRtcCallBin *self = GST_MATRIX_RTC_CALL_BIN (object);
  GstMatrixRtcCallBinClass *klass = GST_MATRIX_RTC_CALL_BIN_GET_CLASS (self);
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);

  G_OBJECT_CLASS (gst_matrix_rtc_call_bin_parent_class)->constructed (object);
  priv->own = lk_connection_new ("sfu0");
  gst_object_ref (priv->own);
  if (!klass->can_receive
      && g_object_class_find_property (
          G_OBJECT_GET_CLASS (priv->own), "auto-subscribe"))
    g_object_set (priv->own, "auto-subscribe", FALSE, NULL);
  g_signal_connect (
      priv->own, "track-added", G_CALLBACK (on_track_added), self);
  g_signal_connect (
      priv->own, "track-removed", G_CALLBACK (on_track_removed), self);
  gst_bin_add (GST_BIN (self), GST_ELEMENT (priv->own));
}

static void
gst_matrix_rtc_call_bin_dispose (GObject *object)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (object);

  if (priv->own != NULL)
    g_signal_handlers_disconnect_by_data (priv->own, object);
  gst_clear_object (&priv->own);
  G_OBJECT_CLASS (gst_matrix_rtc_call_bin_parent_class)->dispose (object);
}

static void
gst_matrix_rtc_call_bin_finalize (GObject *object)
{
  GstMatrixRtcCallBin *self = GST_MATRIX_RTC_CALL_BIN (object);
  GstMatrixRtcCallBinPrivate *priv = PRIV (object);

  gst_matrix_rtc_publish_finalize (self);
  g_hash_table_unref (priv->connections);
  g_hash_table_unref (priv->members);
  g_ptr_array_unref (priv->tracks);
  g_hash_table_unref (priv->counters);
  gst_matrix_rtc_settings_clear (&priv->settings);
  g_rec_mutex_clear (&priv->lock);
  g_mutex_clear (&priv->e2ee_lock);
  g_cond_clear (&priv->e2ee_cond);
  G_OBJECT_CLASS (gst_matrix_rtc_call_bin_parent_class)->finalize (object);
}

static void
gst_matrix_rtc_call_bin_class_init (GstMatrixRtcCallBinClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstMatrixRtcBaseBinClass *base_class = GST_MATRIX_RTC_BASE_BIN_CLASS (klass);

  gobject_class->constructed = gst_matrix_rtc_call_bin_constructed;
  gobject_class->dispose = gst_matrix_rtc_call_bin_dispose;
  gobject_class->finalize = gst_matrix_rtc_call_bin_finalize;
  gobject_class->get_property = gst_matrix_rtc_call_bin_get_property;
  element_class->change_state
      = GST_DEBUG_FUNCPTR (gst_matrix_rtc_call_bin_change_state);
  element_class->request_new_pad
      = GST_DEBUG_FUNCPTR (gst_matrix_rtc_call_bin_request_new_pad);
  element_class->release_pad
      = GST_DEBUG_FUNCPTR (gst_matrix_rtc_call_bin_release_pad);
  element_class->send_event
      = GST_DEBUG_FUNCPTR (gst_matrix_rtc_call_bin_send_event);
  GST_BIN_CLASS (klass)->handle_message
      = GST_DEBUG_FUNCPTR (gst_matrix_rtc_call_bin_handle_message);
  base_class->start = GST_DEBUG_FUNCPTR (gst_matrix_rtc_call_bin_start);
  base_class->stop = GST_DEBUG_FUNCPTR (gst_matrix_rtc_call_bin_stop);
  klass->track_exposed = gst_matrix_rtc_receive_add_pad;
  klass->track_hidden = gst_matrix_rtc_receive_remove_pad;

  /**
   * GstMatrixRtcCallBin:stats:
   *
   * A snapshot of the call: joined, members, connections (SFUs),
   * own-connection-state, remote-tracks-current, remote-tracks-shown,
   * published-tracks, e2ee-mode (the mode in force: "auto" until the room
   * was checked, then "none", "per-member", "passphrase" or
   * "slot-shared"), with e2ee-mode=slot-shared slot-key-status,
   * slot-key-requests (key requests sent), slot-key-index and
   * slot-key-event-id (the key in use), and counters (remote-tracks,
   * decrypt-failures, transport-failures, slot-key-waits,
   * slot-key-retired (our key retired while we lacked the new one: our
   * frames were dropped until it came), ...).
   */
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Members, connections, tracks and failures of the call",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstMatrixRtcCallBin::rotate-slot-key:
   * @self: the element
   *
   * The moderator action of e2ee-mode=slot-shared: sends a new slot key (a
   * Megolm-encrypted `org.matrix.msc4143.rtc.shared_encryption_key` room
   * event with 16 random bytes) and updates the slot state event to name it
   * in application["m.shared_key_event"], keeping the rest of its content.
   * Every member, this one too, switches to the new key (its own key
   * index) once the slot update comes back through sync and the key event
   * is decrypted; the previous key keeps decrypting frames in flight for a
   * grace period (10 s). When two moderators rotate at once, the slot event
   * the room's state keeps decides, so the call converges on one key.
   *
   * Blocking (a few requests to the homeserver): call it from an
   * application thread, not from a streaming thread. When our user lacks
   * the power level to change the slot event, nothing is sent and a
   * warning message (GST_RESOURCE_ERROR_NOT_AUTHORIZED) is posted on the
   * bus; other failures (not in slot-shared mode, not joined yet, no slot,
   * network) post a GST_RESOURCE_ERROR_FAILED warning.
   *
   * Returns: (transfer full) (nullable): the new key event's id, or %NULL
   * on failure.
   */
  g_signal_new_class_handler ("rotate-slot-key", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_CALLBACK (gst_matrix_rtc_call_bin_rotate_slot_key), NULL, NULL, NULL,
      G_TYPE_STRING, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MATRIX_RTC_CALL_BIN, 0);
}

static void
gst_matrix_rtc_call_bin_init (GstMatrixRtcCallBin *self)
{
  GstMatrixRtcCallBinPrivate *priv = PRIV (self);

  g_rec_mutex_init (&priv->lock);
  g_mutex_init (&priv->e2ee_lock);
  g_cond_init (&priv->e2ee_cond);
  priv->e2ee_effective = GST_MATRIX_RTC_E2EE_MODE_AUTO;
  priv->connections = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, gst_object_unref);
  priv->members = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)mrtc_member_unref);
  priv->tracks = g_ptr_array_new_with_free_func (
      (GDestroyNotify)gst_matrix_rtc_remote_track_unref);
  priv->counters
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  gst_matrix_rtc_settings_init (&priv->settings);
  gst_matrix_rtc_publish_init (self);
}
