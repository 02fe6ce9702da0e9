/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_SESSION_H__
#define __MRTC_SESSION_H__

#include "mrtcclient.h"
#include "mrtccallstate.h"

G_BEGIN_DECLS

#define MRTC_SESSION_ERROR (mrtc_session_error_quark ())
GQuark mrtc_session_error_quark (void);

typedef enum
{
  MRTC_SESSION_ERROR_SLOT_CLOSED, /* joining a closed slot */
  MRTC_SESSION_ERROR_PERMISSION,  /* power level too low */
  MRTC_SESSION_ERROR_STATE, /* not started / already joined / not joined */
  MRTC_SESSION_ERROR_NO_TRANSPORT,
} MrtcSessionError;

/**
 * MrtcMembershipFormat:
 * @MRTC_MEMBERSHIP_FORMAT_AUTO: sticky when the homeserver advertises
 *   org.matrix.msc4354, the room is not encrypted (sticky members must
 *   be Megolm-encrypted there, which the session does not do) and
 *   matrix-js-sdk 43 does not read the slot as closed (a slot event in the
 *   seed form, without "status":"open", hides sticky members there), else
 *   legacy.
 * @MRTC_MEMBERSHIP_FORMAT_LEGACY: the org.matrix.msc3401.call.member state
 *   event Element Call writes in its default "compatibility" mode; every
 *   Element Call (and js-sdk) version lists us.
 * @MRTC_MEMBERSHIP_FORMAT_STICKY: the sticky org.matrix.msc4143.rtc.member
 *   event of Element Call's "matrix_2_0" mode (js-sdk 43 shape); Element
 *   Call 0.26+ lists us; older clients do not. The join fails with
 *   MRTC_SESSION_ERROR_SLOT_CLOSED where js-sdk 43 reads the slot as closed
 *   (seed form), since nobody would see us.
 */
typedef enum
{
  MRTC_MEMBERSHIP_FORMAT_AUTO,
  MRTC_MEMBERSHIP_FORMAT_LEGACY,
  MRTC_MEMBERSHIP_FORMAT_STICKY,
} MrtcMembershipFormat;

#define MRTC_TYPE_SESSION (mrtc_session_get_type ())
G_DECLARE_FINAL_TYPE (MrtcSession, mrtc_session, MRTC, SESSION, GObject);

/**
 * MrtcSessionConfig:
 *
 * Our own membership's settings (defaults: Element Call 0.26.1's).
 */
typedef struct
{
  MrtcMembershipFormat format;
  gint64 delayed_leave_ms;         /* 18000 */
  gint64 delayed_leave_restart_ms; /* 4000 */
  gint64 restart_timeout_ms;       /* 2000: local timeout of a restart */
  gint64 sticky_duration_ms;       /* 3600000 */
  gint64 legacy_expires_ms;        /* 14400000 */
  gchar *call_intent;              /* "video", "audio" or NULL */
  gchar *notification_type;        /* NULL, "ring" or "notification" */
  JsonObject *transport; /* {"type":"livekit","livekit_service_url"} */
} MrtcSessionConfig;

/* A session observing @slot_id (NULL: m.call#ROOM) of @room_id (joined
 * already) through @client. Signals are emitted on the client's thread:
 *   member-joined (MrtcMember*), member-updated (MrtcMember*),
 *   member-left (MrtcMember*, const gchar *reason),
 *   left (const gchar *reason): our own membership ended: the reason given
 *     to mrtc_session_leave() ("leave"), "slot_closed", "kicked", "banned",
 *     "forbidden" (the homeserver refuses our membership for good) or
 *     "logged_out" (M_UNKNOWN_TOKEN: the client's sync loop stops too).
 * No signal is emitted once mrtc_session_stop() returned. Dropping the last
 * reference on another thread stops the session on the client's thread and
 * waits for it (do not hold a lock there that a signal handler takes). */
MrtcSession *mrtc_session_new (
    MrtcClient *client, const gchar *room_id, const gchar *slot_id);

/* Settings for the next join or update (copied; applied on the client's
 * thread in order with the calls that follow). */
void mrtc_session_set_config (
    MrtcSession *session, const MrtcSessionConfig *config);
void mrtc_session_config_init (MrtcSessionConfig *config);
void mrtc_session_config_clear (MrtcSessionConfig *config);

/* Blocking calls (from any thread but the client's). */

/* Loads the room state and the sticky events, follows /sync: the session
 * holds the client's sync loop (mrtc_client_hold_sync()) until it stops, so
 * the loop ends with the last session unless mrtc_client_start_sync() was
 * called. */
gboolean mrtc_session_start (MrtcSession *session, GError **error);
/* Schedules the delayed leave, then sends our membership. */
gboolean mrtc_session_join (MrtcSession *session, GError **error);
/* Sends our membership again with the current config (e.g. a new
 * transport); members see member-updated. */
gboolean mrtc_session_update (MrtcSession *session, GError **error);
/* Sends our leave (fires the delayed leave for the default reason). Asked
 * while a join or rejoin is in flight, the leave goes once that is done
 * (the join then reports its own result). */
gboolean mrtc_session_leave (
    MrtcSession *session, const gchar *reason, GError **error);
/* Opens or closes the slot (needs the power level for the slot event). */
gboolean mrtc_session_set_slot_open (
    MrtcSession *session, gboolean open, GError **error);
/* Stops following the room (after leave) and releases the client's sync
 * loop; the session can be dropped. In-flight calls are cancelled; a leave
 * in flight completes without the "left" signal. */
void mrtc_session_stop (MrtcSession *session);

/* Feeds one event the session cannot see in clear in /sync (e.g. a sticky
 * member event after Megolm decryption, keeping its cleartext
 * msc4354_sticky, sender, event_id and origin_server_ts). Any thread. A
 * sticky event the client saw in /sync (by event id) keeps the expiry it
 * had then, whatever TTL the copy carries. */
void mrtc_session_feed_event (MrtcSession *session, JsonObject *event);

/* Thread-safe snapshots. */
GPtrArray *mrtc_session_dup_members (MrtcSession *session);
gboolean mrtc_session_is_joined (MrtcSession *session);
MrtcMembershipFormat mrtc_session_get_joined_format (MrtcSession *session);
/* Our member id (sticky: random UUID; legacy: @user:hs:DEVICE). */
gchar *mrtc_session_dup_member_id (MrtcSession *session);
gchar *mrtc_session_dup_delay_id (MrtcSession *session);
MrtcSlotStatus mrtc_session_get_slot_status (MrtcSession *session);
/* Number of delayed-leave restarts done and reschedules after M_NOT_FOUND. */
guint mrtc_session_get_restart_count (MrtcSession *session);
guint mrtc_session_get_reschedule_count (MrtcSession *session);
/* Number of times we joined again after our membership vanished. */
guint mrtc_session_get_rejoin_count (MrtcSession *session);

G_END_DECLS

#endif /* __MRTC_SESSION_H__ */
