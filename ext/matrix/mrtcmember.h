/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_MEMBER_H__
#define __MRTC_MEMBER_H__

#include <glib-object.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Event types (unstable identifiers as deployed, see matrixrtc.md). */
#define MRTC_EVENT_LEGACY_MEMBER "org.matrix.msc3401.call.member"
#define MRTC_EVENT_RTC_MEMBER "org.matrix.msc4143.rtc.member"
#define MRTC_EVENT_RTC_MEMBER_STABLE "m.rtc.member"
#define MRTC_EVENT_RTC_SLOT "org.matrix.msc4143.rtc.slot"
#define MRTC_EVENT_RTC_SLOT_STABLE "m.rtc.slot"
#define MRTC_EVENT_RTC_NOTIFICATION "org.matrix.msc4075.rtc.notification"

#define MRTC_DEFAULT_SLOT_ID "m.call#ROOM"
/* Legacy members without "expires" are valid for 4 h after created_ts. */
#define MRTC_LEGACY_DEFAULT_EXPIRES_MS (4 * 3600 * G_GINT64_CONSTANT (1000))
/* Sticky events stay sticky for at most one hour (MSC4354). */
#define MRTC_STICKY_MAX_DURATION_MS (3600 * G_GINT64_CONSTANT (1000))
/* Events bigger than this are dropped without parsing (the homeserver caps
 * events at 64 KiB anyway); mrtc_member_parse_json() also refuses nesting
 * deeper than MRTC_JSON_MAX_DEPTH_ANY (ext/json) with MRTC_JSON_ERROR. */
#define MRTC_MAX_EVENT_SIZE (64 * 1024)

#define MRTC_MEMBER_ERROR (mrtc_member_error_quark ())
GQuark mrtc_member_error_quark (void);

typedef enum
{
  MRTC_MEMBER_ERROR_INVALID, /* the event or content does not match any accepted shape */
  MRTC_MEMBER_ERROR_NOT_MEMBER, /* not a membership event type */
} MrtcMemberError;

typedef enum
{
  MRTC_MEMBER_FORMAT_LEGACY, /* org.matrix.msc3401.call.member state event */
  MRTC_MEMBER_FORMAT_STICKY, /* org.matrix.msc4143.rtc.member sticky event */
} MrtcMemberFormat;

/**
 * MrtcMember:
 *
 * One parsed membership event (join or leave), immutable and refcounted.
 * For legacy events @key is the state key; for sticky ones the sticky key.
 */
typedef struct
{
  MrtcMemberFormat format;
  gboolean joined; /* FALSE: a leave content */

  gchar *room_id;
  gchar *event_id;
  gchar *sender;
  gchar *key; /* state key (legacy) or sticky key (sticky) */
  gint64 origin_server_ts;

  /* Only set when joined. */
  gchar *user_id;
  gchar *device_id;
  gchar *member_id; /* sticky: member.id; legacy: membershipID or user:device */
  gchar *slot_id;   /* "m.call#ROOM" (legacy call_id "" reads as ROOM) */
  gchar *application;     /* "m.call" */
  gchar *call_intent;     /* "m.call.intent", or NULL */
  gchar *focus_selection; /* legacy focus_active.focus_selection, or NULL */
  JsonArray *transports;  /* published transports / foci_preferred (objects) */
  gchar **can_subscribe;  /* transport types (sticky), NULL-terminated */
  gint64 created_ts;      /* legacy: created_ts ?? origin_server_ts */
  gint64 expires_ts; /* legacy: created_ts + expires; sticky: 0 (map decides) */
  gchar *identity;   /* LiveKit participant identity */

  /* Only set on leave contents. */
  gchar
      *leave_reason; /* leave_reason.code / disconnect_reason.class, or NULL */

  /*< private >*/
  gint refcount;
} MrtcMember;

#define MRTC_TYPE_MEMBER (mrtc_member_get_type ())
GType mrtc_member_get_type (void);

MrtcMember *mrtc_member_ref (MrtcMember *member);
void mrtc_member_unref (MrtcMember *member);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MrtcMember, mrtc_member_unref);

/* Parses one client event (the JSON object of a /sync or /state event, with
 * type, sender, content, event_id, origin_server_ts and state_key) of type
 * org.matrix.msc3401.call.member or org.matrix.msc4143.rtc.member.
 * Returns a member (joined or left) or NULL with @error set. */
MrtcMember *mrtc_member_parse_event (
    JsonObject *event, const gchar *room_id, GError **error);

/* Same from raw JSON bytes (for the fuzzer and tests). */
MrtcMember *mrtc_member_parse_json (
    const gchar *data, gssize length, const gchar *room_id, GError **error);

/* The published transport the member uses (first of the list), or NULL. */
JsonObject *mrtc_member_get_transport (MrtcMember *member);
/* livekit_service_url of the first published livekit transport, or NULL. */
const gchar *mrtc_member_get_livekit_service_url (MrtcMember *member);

/* TRUE when both describe the same membership (fields other than event
 * metadata are equal). */
gboolean mrtc_member_same_content (MrtcMember *a, MrtcMember *b);

/* LiveKit identities as the token service derives them. */
gchar *mrtc_legacy_identity (const gchar *user_id, const gchar *device_id);
gchar *mrtc_sticky_identity (
    const gchar *user_id, const gchar *device_id, const gchar *member_id);
/* Compact JSON of a string array, escaping like Go's json.Marshal. */
gchar *mrtc_json_string_array_go (const gchar *const *strings);

/* Slot ids "app#id": TRUE when exactly one '#' separates non-empty parts. */
gboolean mrtc_slot_id_split (
    const gchar *slot_id, gchar **application, gchar **id);

/* Matrix user id syntax check (@localpart:server). */
gboolean mrtc_is_valid_user_id (const gchar *user_id);

typedef enum
{
  MRTC_SLOT_UNKNOWN, /* no slot state event */
  MRTC_SLOT_OPEN,
  MRTC_SLOT_CLOSED,
} MrtcSlotStatus;

/* Slot state content (m.rtc.slot / org.matrix.msc4143.rtc.slot): the MSC
 * form {"status":"open"|"closed","application":{"type":...}} and the seed
 * form (content with application = open, {} = closed). Anything not
 * matching the schema reads as closed. */
MrtcSlotStatus mrtc_slot_parse (JsonObject *content, const gchar *slot_id);
/* The same content as matrix-js-sdk 43 (isSlotClosed) reads it: open only
 * with "status": "open" and the application object; the seed form
 * (application without status) reads as CLOSED there, and js-sdk then hides
 * every sticky member of the slot. */
MrtcSlotStatus mrtc_slot_parse_jssdk (
    JsonObject *content, const gchar *slot_id);

/* Our own contents. */

/* Legacy state key "_@u:hs_DEV_m.call" (no leading '_' in rooms of version
 * org.matrix.msc3757* / msc3779*). */
gchar *mrtc_legacy_state_key (const gchar *user_id, const gchar *device_id,
    const gchar *slot_id, const gchar *room_version);

/* Legacy join content as matrix-js-sdk 43 writes it (multi_sfu focus).
 * @created_ts <= 0 leaves created_ts out (first send). */
JsonObject *mrtc_build_legacy_join (const gchar *user_id,
    const gchar *device_id, const gchar *slot_id, JsonObject *transport,
    gint64 expires_ms, gint64 created_ts, const gchar *call_intent);

/* Legacy leave content: {}. */
JsonObject *mrtc_build_legacy_leave (void);

/* Sticky join content as matrix-js-sdk 43 writes it. */
JsonObject *mrtc_build_sticky_join (const gchar *user_id,
    const gchar *device_id, const gchar *member_id, const gchar *slot_id,
    JsonObject *transport, const gchar *call_intent);

/* Sticky leave content {"slot_id", "msc4354_sticky_key"} plus, when
 * @reason is not NULL, "leave_reason": {"code": reason}. */
JsonObject *mrtc_build_sticky_leave (
    const gchar *member_id, const gchar *slot_id, const gchar *reason);

/* Slot content {"status":..., "application":{"type":...}}. */
JsonObject *mrtc_build_slot (
    const gchar *slot_id, gboolean open, gboolean per_member_encryption);

/* A random pseudonymous member id (UUID v4). */
gchar *mrtc_new_member_id (void);

/* Serialises compactly. */
gchar *mrtc_json_object_to_string (JsonObject *object);

/* Strict getters: NULL / FALSE when absent or of another type. */
const gchar *mrtc_json_get_string (JsonObject *object, const gchar *name);
JsonObject *mrtc_json_get_object (JsonObject *object, const gchar *name);
JsonArray *mrtc_json_get_array (JsonObject *object, const gchar *name);
gboolean mrtc_json_get_int (
    JsonObject *object, const gchar *name, gint64 *value);

G_END_DECLS

#endif /* __MRTC_MEMBER_H__ */
