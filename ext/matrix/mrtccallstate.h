/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_CALL_STATE_H__
#define __MRTC_CALL_STATE_H__

#include "mrtcmember.h"
#include "mrtcstickymap.h"

G_BEGIN_DECLS

/**
 * MrtcCallState:
 *
 * Who is in one slot of one room, computed from the room's events as
 * matrix-js-sdk 43 does: legacy state members plus sticky members (the
 * latter hidden while the slot is closed), filtered by slot id, expiry and
 * the sender's room membership. No I/O: feed events, call
 * mrtc_call_state_update() and act on the returned changes.
 */
typedef struct _MrtcCallState MrtcCallState;

typedef enum
{
  MRTC_MEMBER_CHANGE_JOINED,
  MRTC_MEMBER_CHANGE_UPDATED,
  MRTC_MEMBER_CHANGE_LEFT,
} MrtcMemberChangeKind;

typedef struct
{
  MrtcMemberChangeKind kind;
  MrtcMember *member; /* for LEFT: the member as it was */
  gchar *reason;      /* LEFT: leave reason code, "expired",
                                 * "slot_closed", "not_in_room" or "left" */
} MrtcMemberChange;

void mrtc_member_change_free (MrtcMemberChange *change);

MrtcCallState *mrtc_call_state_new (const gchar *room_id, const gchar *slot_id,
    MrtcClockFunc clock, gpointer clock_data);
void mrtc_call_state_free (MrtcCallState *state);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MrtcCallState, mrtc_call_state_free);

/* Feeds one client event from the room: state events (state section, state
 * API or timeline events with a state_key), timeline events and the sticky
 * section. Unknown types are ignored; malformed ones are logged and counted.
 * Returns TRUE when the event changed anything. */
gboolean mrtc_call_state_handle_event (MrtcCallState *state, JsonObject *event);

/* Recomputes the member list and returns what changed since the last call
 * (array of MrtcMemberChange, free with g_ptr_array_unref). */
GPtrArray *mrtc_call_state_update (MrtcCallState *state);

/* Earliest time (ms since the epoch) at which a member expires, G_MAXINT64
 * when none. */
gint64 mrtc_call_state_next_deadline (MrtcCallState *state);

/* The members as of the last update (borrowed, array of MrtcMember). */
GPtrArray *mrtc_call_state_get_members (MrtcCallState *state);
MrtcMember *mrtc_call_state_find_member (
    MrtcCallState *state, const gchar *user_id, const gchar *device_id);

/* Most legacy memberships (state keys) one sender holds in a room: beyond,
 * its oldest is dropped (logged, counted in mrtc_call_state_get_evicted()). */
#define MRTC_CALL_STATE_MAX_LEGACY_PER_SENDER 16

/* The slot: the unstable org.matrix.msc4143.rtc.slot event when there is
 * one (it takes precedence, js-sdk 43 reads only it), else the stable
 * m.rtc.slot; the seed form (application without status) reads as OPEN
 * here (the rule for our own join). */
MrtcSlotStatus mrtc_call_state_get_slot_status (MrtcCallState *state);
/* The slot as matrix-js-sdk 43 (Element Call) reads it: the unstable event
 * only, open only with "status":"open" (the seed form reads as CLOSED).
 * While it is CLOSED, js-sdk hides every sticky member of the slot, and so
 * does mrtc_call_state_update(). */
MrtcSlotStatus mrtc_call_state_get_slot_status_jssdk (MrtcCallState *state);
/* Memberships dropped by the per-sender limits (legacy and sticky). */
guint mrtc_call_state_get_evicted (MrtcCallState *state);
gboolean mrtc_call_state_is_encrypted (MrtcCallState *state);
const gchar *mrtc_call_state_get_room_version (MrtcCallState *state);
/* "join", "leave", ... or NULL. */
const gchar *mrtc_call_state_get_membership (
    MrtcCallState *state, const gchar *user_id);
/* Whether @user_id may send state events of @event_type (power levels). */
gboolean mrtc_call_state_can_send_state (
    MrtcCallState *state, const gchar *user_id, const gchar *event_type);

/* Number of events dropped as malformed so far. */
guint mrtc_call_state_get_dropped (MrtcCallState *state);

const gchar *mrtc_call_state_get_slot_id (MrtcCallState *state);
const gchar *mrtc_call_state_get_room_id (MrtcCallState *state);

G_END_DECLS

#endif /* __MRTC_CALL_STATE_H__ */
