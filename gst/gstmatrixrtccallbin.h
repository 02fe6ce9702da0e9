/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_MATRIX_RTC_CALL_BIN_H__
#define __GST_MATRIX_RTC_CALL_BIN_H__

#include <gst/gst.h>

#include "gstmatrixrtcbasebin.h"
#include "lkconnection.h"
#include "mrtcsession.h"

G_BEGIN_DECLS

/* The machinery shared by matrixrtcbin, matrixrtcsrc and matrixrtcsink,
 * split by concern like webrtcbin:
 *   gstmatrixrtccallbin.c  the call: login, join, transports per member SFU,
 *                          member <-> LiveKit identity, bus messages, stats
 *   gstmatrixrtcpublish.c  local tracks: request sink pads, encoding,
 *                          encryption, payloading, unpublish on EOS
 *   gstmatrixrtcreceive.c  remote tracks: depayloading, decryption,
 *                          optional decoding, output pads per member */

#define GST_TYPE_MATRIX_RTC_CALL_BIN (gst_matrix_rtc_call_bin_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstMatrixRtcCallBin, gst_matrix_rtc_call_bin, GST,
    MATRIX_RTC_CALL_BIN, GstMatrixRtcBaseBin)

typedef struct _GstMatrixRtcRemoteTrack GstMatrixRtcRemoteTrack;
typedef struct _GstMatrixRtcLocalTrack GstMatrixRtcLocalTrack;

/**
 * GstMatrixRtcCallBinClass:
 * @can_publish: the element has request sink pads
 * @can_receive: the element outputs remote members' media
 * @accept_track: whether to show a present member's track (default: all)
 * @track_exposed: a remote track of a present member is ready at @src (the
 *   end of its depayload / decrypt / decode chain, inside the bin). The
 *   default adds a #GstMatrixRtcPad ghosting it.
 * @track_hidden: undoes @track_exposed (the member left or unpublished).
 */
struct _GstMatrixRtcCallBinClass
{
  GstMatrixRtcBaseBinClass parent_class;

  gboolean can_publish;
  gboolean can_receive;

  gboolean (*accept_track) (GstMatrixRtcCallBin *self,
      GstMatrixRtcRemoteTrack *track, MrtcMember *member);
  void (*track_exposed) (
      GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track, GstPad *src);
  void (*track_hidden) (
      GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track);

  gpointer _gst_reserved[GST_PADDING];
};

/* One remote track as one of our LiveKit connections delivers it. Lives
 * from "track-added" to "track-removed"; exposed while its publisher is a
 * member of the call. All fields but the ones marked are fixed. */
struct _GstMatrixRtcRemoteTrack
{
  gint refcount;
  GstMatrixRtcCallBin *bin; /* not a reference */
  LkConnection *connection;
  GstPad *lk_pad; /* the connection's src pad */
  gchar *identity;
  gchar *source; /* "camera", "microphone", "screen_share", ... */
  gchar *kind;   /* "audio" or "video" */
  gboolean encrypted;
  gulong drop_probe;

  /* Under the bin's call lock. */
  gboolean removed;
  gboolean exposed;
  gboolean busy; /* being exposed (object lock) */
  MrtcMember *member;
  GPtrArray *elements; /* the chain, owned by the bin */
  GstPad *chain_sink;
  GstPad *chain_src;
  GstElement *framedec;
  GstPad *out_pad;   /* the element's pad (or the mixer pad of matrixrtcsrc) */
  gpointer out_data; /* for the subclass */
};

/* Read-only views for the receive and publish parts. */
typedef struct
{
  gboolean decode;
  gboolean encrypt;
  gchar *passphrase;
  guint video_bitrate_kbps, audio_bitrate_kbps;
  GstMatrixRtcVideoCodec video_codec;
} GstMatrixRtcMediaConfig;

GstMatrixRtcRemoteTrack *gst_matrix_rtc_remote_track_ref (
    GstMatrixRtcRemoteTrack *track);
void gst_matrix_rtc_remote_track_unref (GstMatrixRtcRemoteTrack *track);

/* Whether remote media is decoded to raw (matrixrtcsrc's "decode"). */
void gst_matrix_rtc_call_bin_set_decode (
    GstMatrixRtcCallBin *self, gboolean decode);
gboolean gst_matrix_rtc_call_bin_get_decode (GstMatrixRtcCallBin *self);

/* The connection to our own SFU (created with the bin). */
LkConnection *gst_matrix_rtc_call_bin_get_own_connection (
    GstMatrixRtcCallBin *self);

/* A copy of the media settings in force (clear with
 * gst_matrix_rtc_media_config_clear()). */
void gst_matrix_rtc_call_bin_get_media_config (
    GstMatrixRtcCallBin *self, GstMatrixRtcMediaConfig *config);
void gst_matrix_rtc_media_config_clear (GstMatrixRtcMediaConfig *config);

/* Ends the element's streams: EOS on every source pad, and an EOS message
 * (the SFU connections' network sinks never see EOS). Once. */
void gst_matrix_rtc_call_bin_finish (GstMatrixRtcCallBin *self, guint32 seqnum);

/* Runs @func on the call thread after @ms, unless the call is not running
 * or the streams ended (then only @notify). */
gboolean gst_matrix_rtc_call_bin_run_later (GstMatrixRtcCallBin *self, guint ms,
    GSourceFunc func, gpointer data, GDestroyNotify notify);

/* The e2ee mode in force: #GST_MATRIX_RTC_E2EE_MODE_AUTO until the call
 * thread checked the room (e2ee-mode=auto without a passphrase). */
GstMatrixRtcE2eeMode gst_matrix_rtc_call_bin_get_e2ee_mode (
    GstMatrixRtcCallBin *self);
/* Waits up to @timeout_ms for the mode to be resolved, or until @pad (if
 * any) flushes or the call stops or fails; returns the mode then. */
GstMatrixRtcE2eeMode gst_matrix_rtc_call_bin_wait_e2ee_mode (
    GstMatrixRtcCallBin *self, GstPad *pad, guint timeout_ms);

/* Counts for the "stats" property. */
void gst_matrix_rtc_call_bin_count (
    GstMatrixRtcCallBin *self, const gchar *counter);

/* The matrixrtcframedec of the shown tracks of @identity, or of every
 * track when @identity is NULL (new refs). */
GPtrArray *gst_matrix_rtc_call_bin_dup_framedecs (
    GstMatrixRtcCallBin *self, const gchar *identity);

/* gstmatrixrtckeys.c: per-member keys (e2ee-mode=per-member) */
gboolean gst_matrix_rtc_keys_start (GstMatrixRtcCallBin *self,
    MrtcClient *client, const gchar *crypto_store, GError **error);
gboolean gst_matrix_rtc_keys_join (GstMatrixRtcCallBin *self,
    const gchar *room_id, const gchar *own_member_id, GError **error);
/* @members: MrtcMember, ourselves included. */
void gst_matrix_rtc_keys_update_members (
    GstMatrixRtcCallBin *self, GPtrArray *members);
void gst_matrix_rtc_keys_apply_remote (
    GstMatrixRtcCallBin *self, const gchar *identity, GstElement *framedec);
void gst_matrix_rtc_keys_apply_own (
    GstMatrixRtcCallBin *self, GstElement *frameenc);
void gst_matrix_rtc_keys_stop (GstMatrixRtcCallBin *self);
void gst_matrix_rtc_keys_stop_slot_key (GstMatrixRtcCallBin *self);
/* gstmatrixrtckeys.c: the slot-shared key (e2ee-mode=slot-shared). After
 * gst_matrix_rtc_keys_start(), before the session starts; then
 * gst_matrix_rtc_keys_join() follows the slot. */
gboolean gst_matrix_rtc_keys_use_slot_key (
    GstMatrixRtcCallBin *self, const gchar *room_id, const gchar *slot_id);
/* A moderator sends the first key when the slot names none (blocking). */
void gst_matrix_rtc_keys_ensure_slot_key (
    GstMatrixRtcCallBin *self, MrtcSession *session);
/* Blocking: a new key event, and the slot updated to name it. */
gchar *gst_matrix_rtc_keys_rotate_slot_key (
    GstMatrixRtcCallBin *self, GError **error);
void gst_matrix_rtc_keys_add_stats (GstMatrixRtcCallBin *self, GstStructure *s);

/* gstmatrixrtcpublish.c */
/* The matrixrtcframeenc of the local tracks (new refs). */
GPtrArray *gst_matrix_rtc_publish_dup_frameencs (GstMatrixRtcCallBin *self);
GstPad *gst_matrix_rtc_publish_request_pad (GstMatrixRtcCallBin *self,
    GstPadTemplate *templ, const gchar *name, const GstCaps *caps);
void gst_matrix_rtc_publish_release_pad (
    GstMatrixRtcCallBin *self, GstPad *pad);
guint gst_matrix_rtc_publish_count (GstMatrixRtcCallBin *self);
/* Unblocks the publishing streaming threads before the connections go
 * down (a sink waiting for preroll holds them). */
void gst_matrix_rtc_publish_flush (GstMatrixRtcCallBin *self);
void gst_matrix_rtc_publish_init (GstMatrixRtcCallBin *self);
void gst_matrix_rtc_publish_finalize (GstMatrixRtcCallBin *self);
GstPadTemplate *gst_matrix_rtc_publish_video_template (void);
GstPadTemplate *gst_matrix_rtc_publish_audio_template (void);

/* gstmatrixrtcreceive.c: called with the call lock held or not, as said. */
/* Builds the track's chain and exposes it (call lock not held). */
void gst_matrix_rtc_receive_expose (
    GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track);
/* Unlinks the track and removes its chain and pad (call lock not held). */
void gst_matrix_rtc_receive_hide (
    GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track);
/* The default track_exposed / track_hidden: a GstMatrixRtcPad. */
void gst_matrix_rtc_receive_add_pad (
    GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track, GstPad *src);
void gst_matrix_rtc_receive_remove_pad (
    GstMatrixRtcCallBin *self, GstMatrixRtcRemoteTrack *track);
GstPadTemplate *gst_matrix_rtc_receive_src_template (gboolean decoded);

G_END_DECLS

#endif /* __GST_MATRIX_RTC_CALL_BIN_H__ */
