/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Unit tests of the MatrixRTC membership core: member parsing for every
 * accepted shape, slot states, our own contents, LiveKit identities, the
 * sticky map and the call state, driven by a fake clock. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <string.h>

#include "mrtcmember.h"
#include "mrtcstickymap.h"
#include "mrtccallstate.h"
#include "mrtcjson.h"

#define ROOM "!room:example.org"
#define ALICE "@alice:example.org"
#define BOB "@bob:example.org"
#define T0 G_GINT64_CONSTANT (1760000000000)

static gint64 fake_now;

static gint64
fake_clock (gpointer user_data)
{
  return fake_now;
}

static JsonObject *
parse_object (const gchar *json)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  GError *error = NULL;

  fail_unless (json_parser_load_from_data (parser, json, -1, &error),
      "bad test JSON: %s", error ? error->message : "");
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static MrtcMember *
parse_member (const gchar *json, GError **error)
{
  return mrtc_member_parse_json (json, -1, ROOM, error);
}

/* A legacy state event around @content. */
static gchar *
legacy_event (const gchar *sender, const gchar *state_key,
    const gchar *event_id, gint64 ts, const gchar *content)
{
  return g_strdup_printf (
      "{\"type\":\"org.matrix.msc3401.call.member\","
      "\"sender\":\"%s\",\"state_key\":\"%s\",\"event_id\":\"%s\","
      "\"origin_server_ts\":%" G_GINT64_FORMAT ",\"content\":%s}",
      sender, state_key, event_id, ts, content);
}

/* A sticky rtc.member event around @content. */
static gchar *
sticky_event (const gchar *sender, const gchar *event_id, gint64 ts,
    gint64 duration, const gchar *content)
{
  return g_strdup_printf (
      "{\"type\":\"org.matrix.msc4143.rtc.member\","
      "\"sender\":\"%s\",\"event_id\":\"%s\",\"origin_server_ts\":"
      "%" G_GINT64_FORMAT
      ",\"msc4354_sticky\":{\"duration_ms\":%" G_GINT64_FORMAT
      "},\"content\":%s}",
      sender, event_id, ts, duration, content);
}

#define LEGACY_JOIN_ALICE                                                      \
  "{\"application\":\"m.call\",\"call_id\":\"\",\"scope\":\"m.room\","         \
  "\"device_id\":\"ALICEDEV\",\"membershipID\":\"@alice:example.org:"          \
  "ALICEDEV\","                                                                \
  "\"expires\":14400000,\"m.call.intent\":\"video\","                          \
  "\"focus_active\":{\"type\":\"livekit\",\"focus_selection\":\"multi_sfu\"}," \
  "\"foci_preferred\":[{\"livekit_alias\":\"!room:example.org\",\"type\":"     \
  "\"livekit\","                                                               \
  "\"livekit_service_url\":\"https://jwt.example.org\"}]}"

#define STICKY_JOIN(user, dev, id)                                             \
  "{\"slot_id\":\"m.call#ROOM\","                                              \
  "\"application\":{\"type\":\"m.call\",\"m.call.intent\":\"video\"},"         \
  "\"transports\":{\"published\":[{\"type\":\"livekit\","                      \
  "\"livekit_service_url\":\"https://"                                         \
  "jwt.example.org\"}],\"can_subscribe\":[\"livekit\"]},"                      \
  "\"member\":{\"device_id\":\"" dev "\",\"user_id\":\"" user                  \
  "\",\"id\":\"" id "\"},"                                                     \
  "\"versions\":[],\"msc4354_sticky_key\":\"" id "\"}"

#define UUID1 "3f1a2b4c-0000-4000-8000-000000000001"

GST_START_TEST (test_legacy_join)
{
  g_autofree gchar *ev = legacy_event (ALICE,
      "_@alice:example.org_ALICEDEV_m.call", "$e1", T0, LEGACY_JOIN_ALICE);
  g_autoptr (GError) error = NULL;
  g_autoptr (MrtcMember) m = parse_member (ev, &error);

  fail_unless (m != NULL, "%s", error ? error->message : "");
  fail_unless_equals_int (m->format, MRTC_MEMBER_FORMAT_LEGACY);
  fail_unless (m->joined);
  fail_unless_equals_string (m->user_id, ALICE);
  fail_unless_equals_string (m->device_id, "ALICEDEV");
  fail_unless_equals_string (m->member_id, "@alice:example.org:ALICEDEV");
  fail_unless_equals_string (m->slot_id, "m.call#ROOM");
  fail_unless_equals_string (m->application, "m.call");
  fail_unless_equals_string (m->call_intent, "video");
  fail_unless_equals_string (m->focus_selection, "multi_sfu");
  fail_unless_equals_string (m->identity, "@alice:example.org:ALICEDEV");
  fail_unless_equals_string (m->key, "_@alice:example.org_ALICEDEV_m.call");
  fail_unless_equals_string (
      mrtc_member_get_livekit_service_url (m), "https://jwt.example.org");
  fail_unless_equals_int64 (m->created_ts, T0);
  fail_unless_equals_int64 (m->expires_ts, T0 + 14400000);
}

GST_END_TEST;

GST_START_TEST (test_legacy_expiry_rules)
{
  g_autofree gchar *ev = NULL;
  g_autoptr (MrtcMember) m = NULL;
  g_autoptr (MrtcMember) m2 = NULL;
  g_autoptr (MrtcMember) m3 = NULL;

  /* created_ts of the first event and a grown expires on re-sends */
  ev = legacy_event (ALICE, "k", "$e", T0 + 3600000,
      "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
      "\"focus_active\":{\"type\":\"livekit\"},\"created_ts\":1760000000000,"
      "\"expires\":28800000}");
  m = parse_member (ev, NULL);
  fail_unless (m != NULL && m->joined);
  fail_unless_equals_int64 (m->created_ts, T0);
  fail_unless_equals_int64 (m->expires_ts, T0 + 28800000);
  /* no membershipID: user:device; no foci: empty transports */
  fail_unless_equals_string (m->member_id, ALICE ":D");
  fail_unless (mrtc_member_get_transport (m) == NULL);
  g_free (ev);

  /* no expires: 4 h default */
  ev = legacy_event (ALICE, "k", "$e", T0,
      "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
      "\"focus_active\":{\"type\":\"livekit\"}}");
  m2 = parse_member (ev, NULL);
  fail_unless (m2 != NULL);
  fail_unless_equals_int64 (
      m2->expires_ts, T0 + MRTC_LEGACY_DEFAULT_EXPIRES_MS);
  g_free (ev);

  /* another call id gives another slot */
  ev = legacy_event (ALICE, "k", "$e", T0,
      "{\"application\":\"m.call\",\"call_id\":\"breakout\",\"device_id\":"
      "\"D\","
      "\"focus_active\":{\"type\":\"livekit\"},\"expires\":1e3}");
  m3 = parse_member (ev, NULL);
  fail_unless (m3 != NULL);
  fail_unless_equals_string (m3->slot_id, "m.call#breakout");
  fail_unless_equals_int64 (m3->expires_ts, T0 + 1000);
}

GST_END_TEST;

GST_START_TEST (test_legacy_left)
{
  const gchar *contents[] = { "{}", "{\"memberships\":[]}",
    "{\"msc4354_sticky_key\":\"x\"}", "{\"application\":\"m.call\"}",
    "{\"leave_reason\":{\"code\":\"leave\"}}", NULL };
  guint i;

  for (i = 0; contents[i] != NULL; i++) {
    g_autofree gchar *ev = legacy_event (ALICE, "k", "$e", T0, contents[i]);
    g_autoptr (GError) error = NULL;
    g_autoptr (MrtcMember) m = parse_member (ev, &error);

    fail_unless (m != NULL, "%s: %s", contents[i], error->message);
    fail_if (m->joined, "%s read as joined", contents[i]);
    fail_unless_equals_string (m->key, "k");
  }
}

GST_END_TEST;

GST_START_TEST (test_legacy_malformed)
{
  const gchar *contents[] = { /* device_id */
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":7,"
    "\"focus_active\":{\"type\":\"livekit\"}}",
    "{\"application\":\"m.call\",\"call_id\":\"\","
    "\"focus_active\":{\"type\":\"livekit\"}}",
    /* call_id */
    "{\"application\":\"m.call\",\"call_id\":null,\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"}}",
    /* application */
    "{\"application\":[\"m.call\"],\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"}}",
    "{\"application\":\"m#call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"}}",
    /* focus_active */
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\"}",
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":\"livekit\"}",
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":1}}",
    /* foci_preferred */
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"},\"foci_preferred\":{}}",
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"},\"foci_preferred\":[1]}",
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"},\"foci_preferred\":[{}]}",
    /* numbers */
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"},\"created_ts\":\"1\"}",
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"},\"expires\":-5}",
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"},\"expires\":1.5}",
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"},\"expires\":1e300}",
    /* optional strings */
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"},\"m.call.intent\":3}",
    "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
    "\"focus_active\":{\"type\":\"livekit\"},\"scope\":{}}",
    NULL
  };
  guint i;

  for (i = 0; contents[i] != NULL; i++) {
    g_autofree gchar *ev = legacy_event (ALICE, "k", "$e", T0, contents[i]);
    g_autoptr (GError) error = NULL;
    g_autoptr (MrtcMember) m = parse_member (ev, &error);

    fail_unless (m == NULL, "accepted %s", contents[i]);
    fail_unless (
        g_error_matches (error, MRTC_MEMBER_ERROR, MRTC_MEMBER_ERROR_INVALID));
  }
}

GST_END_TEST;

GST_START_TEST (test_sticky_jssdk43)
{
  g_autofree gchar *ev = sticky_event (
      ALICE, "$s1", T0, 3600000, STICKY_JOIN (ALICE, "DEVICEID", UUID1));
  g_autoptr (GError) error = NULL;
  g_autoptr (MrtcMember) m = parse_member (ev, &error);

  fail_unless (m != NULL, "%s", error ? error->message : "");
  fail_unless_equals_int (m->format, MRTC_MEMBER_FORMAT_STICKY);
  fail_unless (m->joined);
  fail_unless_equals_string (m->key, UUID1);
  fail_unless_equals_string (m->member_id, UUID1);
  fail_unless_equals_string (m->user_id, ALICE);
  fail_unless_equals_string (m->device_id, "DEVICEID");
  fail_unless_equals_string (m->slot_id, "m.call#ROOM");
  fail_unless_equals_string (m->call_intent, "video");
  fail_unless_equals_string (
      mrtc_member_get_livekit_service_url (m), "https://jwt.example.org");
  fail_unless (m->can_subscribe != NULL);
  fail_unless_equals_string (m->can_subscribe[0], "livekit");
  fail_unless (m->can_subscribe[1] == NULL);
  fail_unless_equals_int64 (m->created_ts, T0);
  fail_unless_equals_string (
      m->identity, "Uj9dhKIdPxxwRNipdzOHgCewiHXEPbkFxgsBQbS1Y7s");
}

GST_END_TEST;

GST_START_TEST (test_sticky_seed_variants)
{
  /* seed / early MSC: rtc_transports, claimed_* ids, sticky_key, versions */
  const gchar *seed
      = "{\"slot_id\":\"m.call#ROOM\","
        "\"application\":{\"type\":\"m.call\"},"
        "\"member\":{\"id\":\"mid\",\"claimed_device_id\":\"DEV\","
        "\"claimed_user_id\":\"@alice:example.org\"},"
        "\"rtc_transports\":[{\"type\":\"livekit\",\"livekit_service_url\":"
        "\"u\"}],"
        "\"versions\":[\"v0\"],\"sticky_key\":\"mid\"}";
  /* MSC text: member.membership join, both sticky keys equal */
  const gchar *msc
      = "{\"slot_id\":\"m.call#ROOM\","
        "\"application\":{\"type\":\"m.call\"},"
        "\"member\":{\"id\":\"mid\",\"membership\":\"join\",\"user_id\":"
        "\"@alice:example.org\",\"device_id\":\"DEV\"},"
        "\"transports\":{\"published\":[{\"type\":\"livekit\"}]},"
        "\"sticky_key\":\"mid\",\"msc4354_sticky_key\":\"mid\","
        "\"m.relates_to\":{\"rel_type\":\"m.reference\",\"event_id\":\"$p\"}}";
  /* unknown versions and fields from newer clients are ignored */
  const gchar *future
      = "{\"slot_id\":\"m.call#ROOM\","
        "\"application\":{\"type\":\"m.call\",\"x\":[1]},"
        "\"member\":{\"id\":\"mid\",\"device_id\":\"DEV\","
        "\"user_id\":\"@alice:example.org\",\"extra\":{}},"
        "\"transports\":{\"published\":[{\"type\":\"quic\"},"
        "{\"type\":\"livekit\"}],\"can_subscribe\":[\"quic\"]},"
        "\"versions\":[\"v99\",\"org.example.future\"],"
        "\"new_field\":{\"a\":1},\"msc4354_sticky_key\":\"mid\"}";
  const gchar *contents[] = { seed, msc, future, NULL };
  guint i;

  for (i = 0; contents[i] != NULL; i++) {
    g_autofree gchar *ev = sticky_event (ALICE, "$s", T0, 1000, contents[i]);
    g_autoptr (GError) error = NULL;
    g_autoptr (MrtcMember) m = parse_member (ev, &error);
    g_autofree gchar *identity = mrtc_sticky_identity (ALICE, "DEV", "mid");

    fail_unless (m != NULL, "%s", error ? error->message : "");
    fail_unless (m->joined);
    fail_unless_equals_string (m->key, "mid");
    fail_unless_equals_string (m->device_id, "DEV");
    fail_unless_equals_string (m->user_id, ALICE);
    fail_unless_equals_string (m->identity, identity);
  }
}

GST_END_TEST;

GST_START_TEST (test_sticky_leave_forms)
{
  struct
  {
    const gchar *content;
    const gchar *reason;
  } cases[] = {
    { "{\"slot_id\":\"m.call#ROOM\",\"msc4354_sticky_key\":\"mid\"}", NULL },
    { "{\"msc4354_sticky_key\":\"mid\"}", NULL },
    { "{\"slot_id\":\"m.call#ROOM\",\"sticky_key\":\"mid\","
      "\"member\":{\"id\":\"mid\",\"membership\":\"leave\"},"
      "\"leave_reason\":{\"code\":\"slot_closed\",\"reason\":\"bye\"}}",
        "slot_closed" },
    { "{\"slot_id\":\"m.call#ROOM\",\"sticky_key\":\"mid\","
      "\"disconnect_reason\":{\"class\":\"user_action\",\"reason\":\"x\"}}",
        "user_action" },
    { "{\"slot_id\":\"m.call#ROOM\",\"msc4354_sticky_key\":\"mid\","
      "\"leave_reason\":{\"code\":\"delayed_leave\"}}",
        "delayed_leave" },
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree gchar *ev
        = sticky_event (ALICE, "$s", T0, 1000, cases[i].content);
    g_autoptr (GError) error = NULL;
    g_autoptr (MrtcMember) m = parse_member (ev, &error);

    fail_unless (m != NULL, "%s: %s", cases[i].content, error->message);
    fail_if (m->joined, "%s read as joined", cases[i].content);
    fail_unless_equals_string (m->key, "mid");
    fail_unless_equals_string (m->leave_reason, cases[i].reason);
  }
}

GST_END_TEST;

GST_START_TEST (test_sticky_malformed)
{
  const gchar *contents[] = { /* claimed user is not the sender */
    STICKY_JOIN (BOB, "D", "mid"),
    /* not a user id */
    STICKY_JOIN ("alice", "D", "mid"),
    /* no sticky key */
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[],\"can_subscribe\":[]},"
    "\"member\":{\"device_id\":\"D\",\"user_id\":\"@alice:example.org\","
    "\"id\":\"m\"},\"versions\":[]}",
    /* sticky keys differ */
    "{\"slot_id\":\"m.call#ROOM\",\"msc4354_sticky_key\":\"a\","
    "\"sticky_key\":\"b\"}",
    /* sticky key not a string */
    "{\"slot_id\":\"m.call#ROOM\",\"msc4354_sticky_key\":5}",
    /* slot ids */
    "{\"slot_id\":\"m.call#ROOM#x\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[]},\"member\":{\"device_id\":\"D\","
    "\"user_id\":\"@alice:example.org\",\"id\":\"m\"},"
    "\"msc4354_sticky_key\":\"m\"}",
    "{\"slot_id\":\"other#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[]},\"member\":{\"device_id\":\"D\","
    "\"user_id\":\"@alice:example.org\",\"id\":\"m\"},"
    "\"msc4354_sticky_key\":\"m\"}",
    "{\"slot_id\":7,\"msc4354_sticky_key\":\"m\"}",
    /* application */
    "{\"slot_id\":\"m.call#ROOM\",\"application\":\"m.call\","
    "\"transports\":{\"published\":[]},\"member\":{\"device_id\":\"D\","
    "\"user_id\":\"@alice:example.org\",\"id\":\"m\"},"
    "\"msc4354_sticky_key\":\"m\"}",
    /* member */
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[]},\"member\":\"x\","
    "\"msc4354_sticky_key\":\"m\"}",
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[]},\"member\":{\"device_id\":\"D\","
    "\"user_id\":\"@alice:example.org\"},\"msc4354_sticky_key\":\"m\"}",
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[]},\"member\":{\"device_id\":1,"
    "\"user_id\":\"@alice:example.org\",\"id\":\"m\"},"
    "\"msc4354_sticky_key\":\"m\"}",
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[]},\"member\":{\"device_id\":\"D\","
    "\"user_id\":\"@alice:example.org\",\"id\":\"m\",\"membership\":\"x\"},"
    "\"msc4354_sticky_key\":\"m\"}",
    /* transports */
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"member\":{\"device_id\":\"D\",\"user_id\":\"@alice:example.org\","
    "\"id\":\"m\"},\"msc4354_sticky_key\":\"m\"}",
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":{}},\"member\":{\"device_id\":\"D\","
    "\"user_id\":\"@alice:example.org\",\"id\":\"m\"},"
    "\"msc4354_sticky_key\":\"m\"}",
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[{\"type\":null}]},\"member\":"
    "{\"device_id\":\"D\",\"user_id\":\"@alice:example.org\",\"id\":\"m\"},"
    "\"msc4354_sticky_key\":\"m\"}",
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[],\"can_subscribe\":[1]},\"member\":"
    "{\"device_id\":\"D\",\"user_id\":\"@alice:example.org\",\"id\":\"m\"},"
    "\"msc4354_sticky_key\":\"m\"}",
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"rtc_transports\":\"livekit\",\"member\":"
    "{\"device_id\":\"D\",\"user_id\":\"@alice:example.org\",\"id\":\"m\"},"
    "\"msc4354_sticky_key\":\"m\"}",
    /* versions, relation */
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[]},\"member\":{\"device_id\":\"D\","
    "\"user_id\":\"@alice:example.org\",\"id\":\"m\"},\"versions\":[2],"
    "\"msc4354_sticky_key\":\"m\"}",
    "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
    "\"transports\":{\"published\":[]},\"member\":{\"device_id\":\"D\","
    "\"user_id\":\"@alice:example.org\",\"id\":\"m\"},"
    "\"m.relates_to\":{\"rel_type\":\"m.thread\",\"event_id\":\"$x\"},"
    "\"msc4354_sticky_key\":\"m\"}",
    NULL
  };
  guint i;

  for (i = 0; contents[i] != NULL; i++) {
    g_autofree gchar *ev = sticky_event (ALICE, "$s", T0, 1000, contents[i]);
    g_autoptr (GError) error = NULL;
    g_autoptr (MrtcMember) m = parse_member (ev, &error);

    fail_unless (m == NULL, "accepted %s", contents[i]);
    fail_unless (error != NULL);
  }
}

GST_END_TEST;

GST_START_TEST (test_malformed_events)
{
  const gchar *events[]
      = { "", "not json", "[]", "null", "42", "\"str\"", "{", "{\"type\":5}",
          "{\"type\":\"m.room.message\",\"sender\":\"@a:b\",\"content\":{}}",
          /* no sender / bad sender */
          "{\"type\":\"org.matrix.msc3401.call.member\",\"state_key\":\"k\","
          "\"content\":{}}",
          "{\"type\":\"org.matrix.msc3401.call.member\",\"sender\":\"alice\","
          "\"state_key\":\"k\",\"content\":{}}",
          "{\"type\":\"org.matrix.msc3401.call.member\",\"sender\":\"@:x\","
          "\"state_key\":\"k\",\"content\":{}}",
          /* content not an object */
          "{\"type\":\"org.matrix.msc3401.call.member\",\"sender\":\"@a:b\","
          "\"state_key\":\"k\",\"content\":[]}",
          /* legacy without state key */
          "{\"type\":\"org.matrix.msc3401.call.member\",\"sender\":\"@a:b\","
          "\"content\":{}}",
          "{\"type\":\"org.matrix.msc3401.call.member\",\"sender\":\"@a:b\","
          "\"state_key\":5,\"content\":{}}",
          /* bad metadata */
          "{\"type\":\"org.matrix.msc3401.call.member\",\"sender\":\"@a:b\","
          "\"state_key\":\"k\",\"content\":{},\"origin_server_ts\":\"1\"}",
          "{\"type\":\"org.matrix.msc3401.call.member\",\"sender\":\"@a:b\","
          "\"state_key\":\"k\",\"content\":{},\"event_id\":{}}",
          NULL };
  g_autoptr (GString) huge
      = g_string_new ("{\"type\":\"org.matrix.msc4143."
                      "rtc.member\",\"sender\":\"@a:b\",\"content\":{\"x\":\"");
  g_autoptr (GString) deep = g_string_new ("");
  g_autoptr (MrtcMember) m = NULL;
  g_autoptr (GError) error = NULL;
  guint i;

  for (i = 0; events[i] != NULL; i++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (MrtcMember) mm = parse_member (events[i], &err);

    fail_unless (mm == NULL, "accepted %s", events[i]);
    fail_unless (err != NULL);
  }

  /* huge events are refused before parsing */
  for (i = 0; i < MRTC_MAX_EVENT_SIZE; i++)
    g_string_append_c (huge, 'x');
  g_string_append (huge, "\"}}");
  m = parse_member (huge->str, &error);
  fail_unless (m == NULL && error != NULL);
  g_clear_error (&error);

  /* deep nesting is an error, not a crash */
  for (i = 0; i < 5000; i++)
    g_string_append_c (deep, '[');
  m = parse_member (deep->str, &error);
  fail_unless (m == NULL && error != NULL);
  g_clear_error (&error);

  /* embedded NUL bytes */
  m = mrtc_member_parse_json ("{\"type\":\0\"x\"}", 13, ROOM, &error);
  fail_unless (m == NULL && error != NULL);
}

GST_END_TEST;

GST_START_TEST (test_identities)
{
  g_autofree gchar *a = NULL, *b = NULL, *c = NULL, *d = NULL, *json = NULL;
  const gchar *parts[] = { "@a<b>&c:example.org",
    "DEV\xe2\x80\xa8\"\\\n\t\b\f\x01", "m<>&", NULL };

  /* Values computed with Go's json.Marshal + sha256 + RawStdEncoding, as
   * lk-jwt-service does (and matching js-sdk's JSON.stringify for plain
   * ids). */
  a = mrtc_sticky_identity (ALICE, "DEVICEID", UUID1);
  fail_unless_equals_string (a, "Uj9dhKIdPxxwRNipdzOHgCewiHXEPbkFxgsBQbS1Y7s");
  b = mrtc_sticky_identity (parts[0], parts[1], parts[2]);
  fail_unless_equals_string (b, "coj5GHN5ZmjsCYV0viLQfgZlQ878mnmjf7+7ks6J51k");
  json = mrtc_json_string_array_go (parts);
  fail_unless_equals_string (json,
      "[\"@a\\u003cb\\u003e\\u0026c:example.org\","
      "\"DEV\\u2028\\\"\\\\\\n\\t\\b\\f\\u0001\",\"m\\u003c\\u003e\\u0026\"]");
  c = mrtc_sticky_identity (
      "@\xc3\xbc:\xe4\xbe\x8b\xe3\x81\x88.jp", "D\xc3\x89V", "\xff\xfeid");
  fail_unless_equals_string (c, "Rcu5DIHl6p0xtLXCOmKXcol1FY7DLqS88O+oaWFG2Rk");
  d = mrtc_legacy_identity (ALICE, "DEV");
  fail_unless_equals_string (d, "@alice:example.org:DEV");
  g_free (json);
  /* MSC4195's alias vector uses the same hashing */
  {
    const gchar *alias[] = { "!roomid:example.com", "slot1234", NULL };

    json = mrtc_json_string_array_go (alias);
    fail_unless_equals_string (json, "[\"!roomid:example.com\",\"slot1234\"]");
  }
}

GST_END_TEST;

GST_START_TEST (test_ids)
{
  g_autofree gchar *app = NULL, *id = NULL, *uuid = NULL, *uuid2 = NULL;

  fail_unless (mrtc_slot_id_split ("m.call#ROOM", &app, &id));
  fail_unless_equals_string (app, "m.call");
  fail_unless_equals_string (id, "ROOM");
  fail_if (mrtc_slot_id_split ("m.call", NULL, NULL));
  fail_if (mrtc_slot_id_split ("#ROOM", NULL, NULL));
  fail_if (mrtc_slot_id_split ("a#b#c", NULL, NULL));
  fail_if (mrtc_slot_id_split (NULL, NULL, NULL));
  fail_unless (mrtc_slot_id_split ("app#", NULL, NULL));

  fail_unless (mrtc_is_valid_user_id ("@a:b"));
  fail_unless (mrtc_is_valid_user_id ("@alice:localhost:8448"));
  fail_if (mrtc_is_valid_user_id ("@a"));
  fail_if (mrtc_is_valid_user_id ("a:b"));
  fail_if (mrtc_is_valid_user_id ("@:b"));
  fail_if (mrtc_is_valid_user_id ("@a:"));
  fail_if (mrtc_is_valid_user_id ("@a:b c"));
  fail_if (mrtc_is_valid_user_id (NULL));

  uuid = mrtc_new_member_id ();
  uuid2 = mrtc_new_member_id ();
  fail_unless (g_uuid_string_is_valid (uuid));
  fail_unless (g_strcmp0 (uuid, uuid2) != 0);
}

GST_END_TEST;

GST_START_TEST (test_slot_states)
{
  struct
  {
    const gchar *content;
    MrtcSlotStatus status;
  } cases[] = {
    { "{\"status\":\"open\",\"application\":{\"type\":\"m.call\"}}",
        MRTC_SLOT_OPEN },
    { "{\"status\":\"open\",\"application\":{\"type\":\"m.call\"},"
      "\"encryption\":{\"type\":\"org.matrix.msc4143.per_member\"}}",
        MRTC_SLOT_OPEN },
    { "{\"status\":\"closed\",\"application\":{\"type\":\"m.call\"}}",
        MRTC_SLOT_CLOSED },
    { "{\"status\":\"closed\"}", MRTC_SLOT_CLOSED },
    /* MSC schema violations read as closed */
    { "{\"status\":\"open\"}", MRTC_SLOT_CLOSED },
    { "{\"status\":\"open\",\"application\":{\"type\":\"m.other\"}}",
        MRTC_SLOT_CLOSED },
    { "{\"status\":\"opened\",\"application\":{\"type\":\"m.call\"}}",
        MRTC_SLOT_CLOSED },
    { "{\"status\":1,\"application\":{\"type\":\"m.call\"}}",
        MRTC_SLOT_CLOSED },
    { "{\"status\":\"open\",\"application\":\"m.call\"}", MRTC_SLOT_CLOSED },
    /* seed form: content with application = open, {} = closed */
    { "{\"application\":{\"type\":\"m.call\"}}", MRTC_SLOT_OPEN },
    { "{}", MRTC_SLOT_CLOSED },
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (JsonObject) content = parse_object (cases[i].content);

    fail_unless_equals_int (
        mrtc_slot_parse (content, "m.call#ROOM"), cases[i].status);
  }
  fail_unless_equals_int (
      mrtc_slot_parse (NULL, "m.call#ROOM"), MRTC_SLOT_CLOSED);
}

GST_END_TEST;

/* Our contents parse back, and match js-sdk 43's wire form. */
GST_START_TEST (test_builders)
{
  g_autoptr (JsonObject) transport
      = parse_object ("{\"type\":\"livekit\","
                      "\"livekit_service_url\":\"http://"
                      "127.0.0.1:8080\",\"livekit_alias\":\"x\"}");
  g_autoptr (JsonObject) legacy = NULL;
  g_autoptr (JsonObject) sticky = NULL;
  g_autoptr (JsonObject) leave = NULL;
  g_autoptr (JsonObject) slot = NULL;
  g_autofree gchar *s = NULL, *key = NULL, *ev = NULL;
  g_autoptr (MrtcMember) m = NULL;
  g_autoptr (MrtcMember) m2 = NULL;
  g_autoptr (MrtcMember) m3 = NULL;

  key = mrtc_legacy_state_key (ALICE, "DEV", "m.call#ROOM", "10");
  fail_unless_equals_string (key, "_@alice:example.org_DEV_m.call");
  g_free (key);
  key = mrtc_legacy_state_key (
      ALICE, "DEV", "m.call#ROOM", "org.matrix.msc3757.10");
  fail_unless_equals_string (key, "@alice:example.org_DEV_m.call");
  g_free (key);
  key = mrtc_legacy_state_key (ALICE, "DEV", "m.call#side", NULL);
  fail_unless_equals_string (key, "_@alice:example.org_DEV_m.callside");

  legacy = mrtc_build_legacy_join (
      ALICE, "DEV", "m.call#ROOM", transport, 14400000, 0, "video");
  s = mrtc_json_object_to_string (legacy);
  fail_unless_equals_string (s,
      "{\"application\":\"m.call\",\"call_id\":\"\","
      "\"scope\":\"m.room\",\"device_id\":\"DEV\",\"membershipID\":"
      "\"@alice:example.org:DEV\",\"expires\":14400000,\"m.call.intent\":"
      "\"video\",\"focus_active\":{\"type\":\"livekit\",\"focus_selection\":"
      "\"multi_sfu\"},\"foci_preferred\":[{\"type\":\"livekit\","
      "\"livekit_service_url\":\"http://127.0.0.1:8080\"}]}");
  ev = legacy_event (ALICE, "k", "$e", T0, s);
  m = parse_member (ev, NULL);
  fail_unless (m != NULL && m->joined);
  fail_unless_equals_string (m->identity, "@alice:example.org:DEV");
  fail_unless_equals_int64 (m->expires_ts, T0 + 14400000);
  g_free (s);
  g_free (ev);
  json_object_unref (legacy);
  legacy = mrtc_build_legacy_join (
      ALICE, "DEV", "m.call#ROOM", transport, 28800000, T0, NULL);
  fail_unless (json_object_get_int_member (legacy, "created_ts") == T0);
  fail_if (json_object_has_member (legacy, "m.call.intent"));

  sticky = mrtc_build_sticky_join (
      ALICE, "DEV", UUID1, "m.call#ROOM", transport, "audio");
  s = mrtc_json_object_to_string (sticky);
  fail_unless_equals_string (s,
      "{\"application\":{\"type\":\"m.call\","
      "\"m.call.intent\":\"audio\"},\"slot_id\":\"m.call#ROOM\",\"transports\":"
      "{\"published\":[{\"type\":\"livekit\",\"livekit_service_url\":"
      "\"http://127.0.0.1:8080\"}],\"can_subscribe\":[\"livekit\"]},\"member\":"
      "{\"device_id\":\"DEV\",\"user_id\":\"@alice:example.org\",\"id\":"
      "\"" UUID1 "\"},\"versions\":[],\"msc4354_sticky_key\":\"" UUID1 "\"}");
  ev = sticky_event (ALICE, "$s", T0, 3600000, s);
  m2 = parse_member (ev, NULL);
  fail_unless (m2 != NULL && m2->joined);
  fail_unless_equals_string (m2->member_id, UUID1);
  fail_unless_equals_string (m2->call_intent, "audio");
  g_free (s);
  g_free (ev);

  leave = mrtc_build_sticky_leave (UUID1, "m.call#ROOM", "slot_closed");
  s = mrtc_json_object_to_string (leave);
  fail_unless_equals_string (s,
      "{\"slot_id\":\"m.call#ROOM\","
      "\"msc4354_sticky_key\":\"" UUID1 "\",\"leave_reason\":{\"code\":"
      "\"slot_closed\"}}");
  ev = sticky_event (ALICE, "$s2", T0, 3600000, s);
  m3 = parse_member (ev, NULL);
  fail_unless (m3 != NULL && !m3->joined);
  fail_unless_equals_string (m3->leave_reason, "slot_closed");
  g_free (s);
  json_object_unref (leave);
  leave = mrtc_build_sticky_leave (UUID1, "m.call#ROOM", NULL);
  s = mrtc_json_object_to_string (leave);
  fail_unless_equals_string (s, "{\"slot_id\":\"m.call#ROOM\","
                                "\"msc4354_sticky_key\":\"" UUID1 "\"}");
  g_free (s);

  slot = mrtc_build_slot ("m.call#ROOM", TRUE, TRUE);
  s = mrtc_json_object_to_string (slot);
  fail_unless_equals_string (s,
      "{\"status\":\"open\",\"application\":"
      "{\"type\":\"m.call\"},\"encryption\":{\"type\":"
      "\"org.matrix.msc4143.per_member\"}}");
  fail_unless_equals_int (
      mrtc_slot_parse (slot, "m.call#ROOM"), MRTC_SLOT_OPEN);
  g_free (s);
  json_object_unref (slot);
  slot = mrtc_build_slot ("m.call#ROOM", FALSE, FALSE);
  s = mrtc_json_object_to_string (slot);
  fail_unless_equals_string (s, "{\"status\":\"closed\"}");
  fail_unless_equals_int (
      mrtc_slot_parse (slot, "m.call#ROOM"), MRTC_SLOT_CLOSED);
}

GST_END_TEST;

/* Sticky map */

static JsonObject *
sticky_obj (const gchar *sender, const gchar *event_id, gint64 ts,
    gint64 duration, const gchar *key)
{
  g_autofree gchar *content = g_strdup_printf ("{\"slot_id\":\"m.call#ROOM\","
                                               "\"msc4354_sticky_key\":\"%s\"}",
      key);
  g_autofree gchar *ev = sticky_event (sender, event_id, ts, duration, content);

  return parse_object (ev);
}

GST_START_TEST (test_sticky_map_conflicts)
{
  g_autoptr (MrtcStickyMap) map = mrtc_sticky_map_new (fake_clock, NULL);
  g_autoptr (JsonObject) e1 = sticky_obj (ALICE, "$b", T0, 60000, "k");
  g_autoptr (JsonObject) e2 = sticky_obj (ALICE, "$a", T0 + 10, 60000, "k");
  g_autoptr (JsonObject) e_old = sticky_obj (ALICE, "$z", T0 - 10, 60000, "k");
  g_autoptr (JsonObject) e_tie_lo
      = sticky_obj (ALICE, "$0", T0 + 10, 60000, "k");
  g_autoptr (JsonObject) e_tie_hi
      = sticky_obj (ALICE, "$c", T0 + 10, 60000, "k");
  g_autoptr (JsonObject) other_sender = sticky_obj (BOB, "$d", T0, 60000, "k");
  g_autoptr (JsonObject) other_key = sticky_obj (ALICE, "$e", T0, 60000, "k2");
  g_autoptr (JsonObject) not_sticky
      = parse_object ("{\"type\":\"x\","
                      "\"sender\":\"@a:b\",\"event_id\":\"$n\",\"content\":"
                      "{\"msc4354_sticky_key\":\"k\"}}");
  g_autoptr (JsonObject) unkeyed = parse_object (
      "{\"type\":\"x\","
      "\"sender\":\"@a:b\",\"event_id\":\"$n\",\"msc4354_sticky\":"
      "{\"duration_ms\":1000},\"content\":{}}");
  const MrtcStickyEntry *e;

  fake_now = T0 + 100;
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, e1), MRTC_STICKY_ADDED);
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, e1), MRTC_STICKY_IGNORED_OLDER);
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, e2), MRTC_STICKY_REPLACED);
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, e_old), MRTC_STICKY_IGNORED_OLDER);
  /* same timestamp: the lexicographically higher event id wins */
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, e_tie_lo), MRTC_STICKY_IGNORED_OLDER);
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, e_tie_hi), MRTC_STICKY_REPLACED);
  e = mrtc_sticky_map_lookup (
      map, ROOM, "org.matrix.msc4143.rtc.member", ALICE, "k");
  fail_unless (e != NULL);
  fail_unless_equals_string (e->event_id, "$c");
  /* keyed by room, type, sender and key */
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, other_sender), MRTC_STICKY_ADDED);
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, other_key), MRTC_STICKY_ADDED);
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, "!other:x", e1), MRTC_STICKY_ADDED);
  fail_unless_equals_int (mrtc_sticky_map_size (map), 4);
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, not_sticky), MRTC_STICKY_IGNORED_INVALID);
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, unkeyed), MRTC_STICKY_IGNORED_INVALID);
  /* redaction */
  fail_unless (mrtc_sticky_map_remove_event (map, "$e"));
  fail_if (mrtc_sticky_map_remove_event (map, "$e"));
  fail_unless_equals_int (mrtc_sticky_map_size (map), 3);
}

GST_END_TEST;

GST_START_TEST (test_sticky_map_expiry)
{
  g_autoptr (MrtcStickyMap) map = mrtc_sticky_map_new (fake_clock, NULL);
  g_autoptr (JsonObject) a = sticky_obj (ALICE, "$a", T0, 10000, "a");
  g_autoptr (JsonObject) b = sticky_obj (ALICE, "$b", T0, 20000, "b");
  g_autoptr (JsonObject) late = sticky_obj (ALICE, "$l", T0, 5000, "l");
  g_autoptr (JsonObject) future
      = sticky_obj (ALICE, "$f", T0 + 60000, 10000, "f");
  g_autoptr (JsonObject) capped = sticky_obj (ALICE, "$c", T0, 7200000, "c");
  g_autoptr (JsonObject) ttl = parse_object (
      "{\"type\":\"t\",\"sender\":"
      "\"@a:b\",\"event_id\":\"$t\",\"origin_server_ts\":1,\"msc4354_sticky\":"
      "{\"duration_ms\":3600000},\"unsigned\":{\"msc4354_sticky_duration_ttl_"
      "ms\":"
      "2500},\"content\":{\"msc4354_sticky_key\":\"t\"}}");
  g_autoptr (JsonObject) empty = parse_object ("{}");
  g_autoptr (GPtrArray) removed = NULL;

  fake_now = T0 + 1000;
  /* start = min(now, origin_server_ts) + min(duration, 1 h) */
  fail_unless_equals_int64 (mrtc_sticky_event_expiry (a, fake_now), T0 + 10000);
  fail_unless_equals_int64 (
      mrtc_sticky_event_expiry (future, fake_now), fake_now + 10000);
  fail_unless_equals_int64 (
      mrtc_sticky_event_expiry (capped, fake_now), T0 + 3600000);
  fail_unless_equals_int64 (
      mrtc_sticky_event_expiry (ttl, fake_now), fake_now + 2500);
  fail_unless_equals_int64 (mrtc_sticky_event_expiry (empty, fake_now), -1);

  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, a), MRTC_STICKY_ADDED);
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, b), MRTC_STICKY_ADDED);
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, ttl), MRTC_STICKY_ADDED);
  fail_unless_equals_int64 (mrtc_sticky_map_next_expiry (map), T0 + 3500);

  fake_now = T0 + 6000;
  /* arrives already expired */
  fail_unless_equals_int (
      mrtc_sticky_map_add (map, ROOM, late), MRTC_STICKY_IGNORED_EXPIRED);
  removed = mrtc_sticky_map_expire (map);
  fail_unless_equals_int (removed->len, 1);
  g_ptr_array_unref (removed);
  fail_unless_equals_int64 (mrtc_sticky_map_next_expiry (map), T0 + 10000);

  fake_now = T0 + 9999;
  removed = mrtc_sticky_map_expire (map);
  fail_unless_equals_int (removed->len, 0);
  g_ptr_array_unref (removed);
  fake_now = T0 + 10000;
  removed = mrtc_sticky_map_expire (map);
  fail_unless_equals_int (removed->len, 1);
  fail_unless_equals_string (((MrtcStickyEntry *)removed->pdata[0])->key, "a");
  g_ptr_array_unref (removed);
  fake_now = T0 + 30000;
  removed = mrtc_sticky_map_expire (map);
  fail_unless_equals_int (removed->len, 1);
  fail_unless_equals_int (mrtc_sticky_map_size (map), 0);
  fail_unless_equals_int64 (mrtc_sticky_map_next_expiry (map), G_MAXINT64);
}

GST_END_TEST;

/* Call state */

static void
feed (MrtcCallState *state, const gchar *json)
{
  g_autoptr (JsonObject) ev = parse_object (json);

  mrtc_call_state_handle_event (state, ev);
}

static void
feed_join (MrtcCallState *state, const gchar *user, const gchar *ms)
{
  g_autofree gchar *ev = g_strdup_printf (
      "{\"type\":\"m.room.member\","
      "\"sender\":\"%s\",\"state_key\":\"%s\",\"event_id\":\"$m\","
      "\"content\":{\"membership\":\"%s\"}}",
      user, user, ms);

  feed (state, ev);
}

static GPtrArray *
update (MrtcCallState *state, guint expected)
{
  GPtrArray *changes = mrtc_call_state_update (state);

  fail_unless_equals_int (changes->len, expected);
  return changes;
}

#define CHANGE(changes, i) ((MrtcMemberChange *)(changes)->pdata[i])

GST_START_TEST (test_call_state_both_formats)
{
  g_autoptr (MrtcCallState) state
      = mrtc_call_state_new (ROOM, "m.call#ROOM", fake_clock, NULL);
  g_autofree gchar *legacy = legacy_event (ALICE,
      "_@alice:example.org_ALICEDEV"
      "_m.call",
      "$l1", T0, LEGACY_JOIN_ALICE);
  g_autofree gchar *sticky = sticky_event (
      BOB, "$s1", T0 + 5, 3600000, STICKY_JOIN (BOB, "BOBDEV", UUID1));
  g_autofree gchar *sticky_upd = NULL;
  g_autofree gchar *sticky_leave = NULL;
  g_autofree gchar *legacy_leave = NULL;
  g_autoptr (GPtrArray) changes = NULL;
  GPtrArray *members;

  fake_now = T0 + 1000;
  feed_join (state, ALICE, "join");
  feed_join (state, BOB, "join");
  feed (state, legacy);
  feed (state, sticky);
  changes = update (state, 2);
  fail_unless_equals_int (CHANGE (changes, 0)->kind, MRTC_MEMBER_CHANGE_JOINED);
  fail_unless_equals_string (CHANGE (changes, 0)->member->user_id, ALICE);
  fail_unless_equals_string (CHANGE (changes, 1)->member->user_id, BOB);
  fail_unless_equals_string (CHANGE (changes, 1)->member->member_id, UUID1);
  members = mrtc_call_state_get_members (state);
  fail_unless_equals_int (members->len, 2);
  fail_unless (mrtc_call_state_find_member (state, BOB, "BOBDEV") != NULL);
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* nothing new: no changes */
  changes = update (state, 0);
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* an update of Bob's transports */
  sticky_upd = sticky_event (BOB, "$s2", T0 + 50, 3600000,
      "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
      "\"transports\":{\"published\":[{\"type\":\"livekit\","
      "\"livekit_service_url\":\"https://other\"}],\"can_subscribe\":"
      "[\"livekit\"]},\"member\":{\"device_id\":\"BOBDEV\",\"user_id\":"
      "\"@bob:example.org\",\"id\":\"" UUID1 "\"},\"versions\":[],"
      "\"msc4354_sticky_key\":\"" UUID1 "\"}");
  feed (state, sticky_upd);
  changes = update (state, 1);
  fail_unless_equals_int (
      CHANGE (changes, 0)->kind, MRTC_MEMBER_CHANGE_UPDATED);
  fail_unless_equals_string (
      mrtc_member_get_livekit_service_url (CHANGE (changes, 0)->member),
      "https://other");
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* an older event for the same key changes nothing */
  feed (state, sticky);
  changes = update (state, 0);
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* Bob leaves with a reason; Alice with {} */
  sticky_leave = sticky_event (BOB, "$s3", T0 + 60, 3600000,
      "{\"slot_id\":\"m.call#ROOM\",\"msc4354_sticky_key\":\"" UUID1 "\","
      "\"leave_reason\":{\"code\":\"leave\"}}");
  feed (state, sticky_leave);
  legacy_leave = legacy_event (
      ALICE, "_@alice:example.org_ALICEDEV_m.call", "$l2", T0 + 70, "{}");
  feed (state, legacy_leave);
  changes = update (state, 2);
  fail_unless_equals_int (CHANGE (changes, 0)->kind, MRTC_MEMBER_CHANGE_LEFT);
  fail_unless_equals_int (CHANGE (changes, 1)->kind, MRTC_MEMBER_CHANGE_LEFT);
  fail_unless_equals_int (mrtc_call_state_get_members (state)->len, 0);
  {
    guint i;
    gboolean saw_bob = FALSE;

    for (i = 0; i < 2; i++) {
      if (g_strcmp0 (CHANGE (changes, i)->member->user_id, BOB) == 0) {
        fail_unless_equals_string (CHANGE (changes, i)->reason, "leave");
        saw_bob = TRUE;
      } else {
        fail_unless_equals_string (CHANGE (changes, i)->reason, "left");
      }
    }
    fail_unless (saw_bob);
  }
}

GST_END_TEST;

GST_START_TEST (test_call_state_filters)
{
  g_autoptr (MrtcCallState) state
      = mrtc_call_state_new (ROOM, "m.call#ROOM", fake_clock, NULL);
  g_autofree gchar *legacy
      = legacy_event (ALICE, "k", "$l1", T0, LEGACY_JOIN_ALICE);
  g_autofree gchar *impostor = sticky_event (
      BOB, "$s1", T0, 3600000, STICKY_JOIN (ALICE, "ALICEDEV", "x"));
  g_autofree gchar *other_slot = sticky_event (BOB, "$s2", T0, 3600000,
      "{\"slot_id\":\"m.call#side\",\"application\":{\"type\":\"m.call\"},"
      "\"transports\":{\"published\":[]},\"member\":{\"device_id\":\"D\","
      "\"user_id\":\"@bob:example.org\",\"id\":\"y\"},"
      "\"msc4354_sticky_key\":\"y\"}");
  g_autoptr (GPtrArray) changes = NULL;

  fake_now = T0 + 1000;
  /* Alice is not in the room (yet) */
  feed (state, legacy);
  feed_join (state, BOB, "join");
  feed (state, impostor);
  feed (state, other_slot);
  feed (state, "{\"type\":\"org.matrix.msc4143.rtc.member\"}");
  feed (state, "{\"content\":{}}");
  changes = update (state, 0);
  fail_unless (mrtc_call_state_get_dropped (state) >= 3);
  g_ptr_array_unref (g_steal_pointer (&changes));

  feed_join (state, ALICE, "join");
  changes = update (state, 1);
  fail_unless_equals_string (CHANGE (changes, 0)->member->user_id, ALICE);
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* Alice leaves the room: her membership goes */
  feed_join (state, ALICE, "leave");
  changes = update (state, 1);
  fail_unless_equals_int (CHANGE (changes, 0)->kind, MRTC_MEMBER_CHANGE_LEFT);
  fail_unless_equals_string (CHANGE (changes, 0)->reason, "not_in_room");
}

GST_END_TEST;

GST_START_TEST (test_call_state_expiry)
{
  g_autoptr (MrtcCallState) state
      = mrtc_call_state_new (ROOM, "m.call#ROOM", fake_clock, NULL);
  g_autofree gchar *legacy = legacy_event (ALICE, "k", "$l1", T0,
      "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
      "\"focus_active\":{\"type\":\"livekit\"},\"expires\":30000}");
  g_autofree gchar *sticky = sticky_event (
      BOB, "$s1", T0, 20000, STICKY_JOIN (BOB, "BOBDEV", UUID1));
  g_autoptr (GPtrArray) changes = NULL;

  fake_now = T0 + 1000;
  feed_join (state, ALICE, "join");
  feed_join (state, BOB, "join");
  feed (state, legacy);
  feed (state, sticky);
  changes = update (state, 2);
  g_ptr_array_unref (g_steal_pointer (&changes));
  fail_unless_equals_int64 (mrtc_call_state_next_deadline (state), T0 + 20000);

  fake_now = T0 + 20000;
  changes = update (state, 1);
  fail_unless_equals_string (CHANGE (changes, 0)->member->user_id, BOB);
  fail_unless_equals_string (CHANGE (changes, 0)->reason, "expired");
  g_ptr_array_unref (g_steal_pointer (&changes));
  fail_unless_equals_int64 (mrtc_call_state_next_deadline (state), T0 + 30000);

  fake_now = T0 + 30000;
  changes = update (state, 1);
  fail_unless_equals_string (CHANGE (changes, 0)->member->user_id, ALICE);
  fail_unless_equals_string (CHANGE (changes, 0)->reason, "expired");
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* Nothing left to expire: no deadline. The expired legacy entry stays in
   * the state (its key has not changed) but must not ask for an update
   * right away, again and again (the review's finding 1: 100% CPU). */
  fail_unless_equals_int64 (mrtc_call_state_next_deadline (state), G_MAXINT64);
  changes = update (state, 0);
  g_ptr_array_unref (g_steal_pointer (&changes));
  fail_unless_equals_int64 (mrtc_call_state_next_deadline (state), G_MAXINT64);
}

GST_END_TEST;

GST_START_TEST (test_call_state_slot)
{
  g_autoptr (MrtcCallState) state
      = mrtc_call_state_new (ROOM, "m.call#ROOM", fake_clock, NULL);
  g_autofree gchar *legacy
      = legacy_event (ALICE, "k", "$l1", T0, LEGACY_JOIN_ALICE);
  g_autofree gchar *sticky = sticky_event (
      BOB, "$s1", T0, 3600000, STICKY_JOIN (BOB, "BOBDEV", UUID1));
  g_autoptr (GPtrArray) changes = NULL;

  fake_now = T0 + 1000;
  fail_unless_equals_int (
      mrtc_call_state_get_slot_status (state), MRTC_SLOT_UNKNOWN);
  feed_join (state, ALICE, "join");
  feed_join (state, BOB, "join");
  feed (state, legacy);
  feed (state, sticky);
  changes = update (state, 2);
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* closing hides the sticky members (js-sdk 43), not the legacy ones */
  feed (state, "{\"type\":\"org.matrix.msc4143.rtc.slot\",\"state_key\":"
               "\"m.call#ROOM\",\"sender\":\"@alice:example.org\",\"content\":"
               "{\"status\":\"closed\"}}");
  fail_unless_equals_int (
      mrtc_call_state_get_slot_status (state), MRTC_SLOT_CLOSED);
  changes = update (state, 1);
  fail_unless_equals_string (CHANGE (changes, 0)->member->user_id, BOB);
  fail_unless_equals_string (CHANGE (changes, 0)->reason, "slot_closed");
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* a slot with another state key changes nothing */
  feed (state, "{\"type\":\"org.matrix.msc4143.rtc.slot\",\"state_key\":"
               "\"m.call#other\",\"sender\":\"@alice:example.org\",\"content\":"
               "{\"status\":\"open\",\"application\":{\"type\":\"m.call\"}}}");
  fail_unless_equals_int (
      mrtc_call_state_get_slot_status (state), MRTC_SLOT_CLOSED);

  /* the stable event does not override the unstable one (js-sdk 43 reads
   * only the unstable one) */
  feed (state, "{\"type\":\"m.rtc.slot\",\"state_key\":\"m.call#ROOM\","
               "\"sender\":\"@alice:example.org\",\"content\":{\"status\":"
               "\"open\",\"application\":{\"type\":\"m.call\"}}}");
  fail_unless_equals_int (
      mrtc_call_state_get_slot_status (state), MRTC_SLOT_CLOSED);
  changes = update (state, 0);
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* the seed form (application without status): open for our join, closed
   * for js-sdk 43, which hides the sticky members */
  feed (state, "{\"type\":\"org.matrix.msc4143.rtc.slot\",\"state_key\":"
               "\"m.call#ROOM\",\"event_id\":\"$seed\",\"sender\":"
               "\"@alice:example.org\",\"content\":{\"application\":"
               "{\"type\":\"m.call\"}}}");
  fail_unless_equals_int (
      mrtc_call_state_get_slot_status (state), MRTC_SLOT_OPEN);
  fail_unless_equals_int (
      mrtc_call_state_get_slot_status_jssdk (state), MRTC_SLOT_CLOSED);
  changes = update (state, 0);
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* re-opening (unstable type, MSC form) brings Bob back */
  feed (state, "{\"type\":\"org.matrix.msc4143.rtc.slot\",\"state_key\":"
               "\"m.call#ROOM\",\"event_id\":\"$open\",\"sender\":"
               "\"@alice:example.org\",\"content\":{\"status\":\"open\","
               "\"application\":{\"type\":\"m.call\"}}}");
  fail_unless_equals_int (
      mrtc_call_state_get_slot_status (state), MRTC_SLOT_OPEN);
  fail_unless_equals_int (
      mrtc_call_state_get_slot_status_jssdk (state), MRTC_SLOT_OPEN);
  changes = update (state, 1);
  fail_unless_equals_int (CHANGE (changes, 0)->kind, MRTC_MEMBER_CHANGE_JOINED);
  g_ptr_array_unref (g_steal_pointer (&changes));

  /* redacting the slot event empties it: closed (finding 11) */
  feed (state, "{\"type\":\"m.room.redaction\",\"redacts\":\"$open\","
               "\"sender\":\"@alice:example.org\",\"event_id\":\"$r1\","
               "\"content\":{}}");
  fail_unless_equals_int (
      mrtc_call_state_get_slot_status (state), MRTC_SLOT_CLOSED);
  changes = update (state, 1);
  fail_unless_equals_string (CHANGE (changes, 0)->reason, "slot_closed");
}

GST_END_TEST;

GST_START_TEST (test_call_state_room_state)
{
  g_autoptr (MrtcCallState) state
      = mrtc_call_state_new (ROOM, NULL, fake_clock, NULL);

  fail_unless_equals_string (
      mrtc_call_state_get_slot_id (state), "m.call#ROOM");
  /* no power levels: anyone */
  fail_unless (mrtc_call_state_can_send_state (
      state, BOB, "org.matrix.msc4143.rtc.slot"));
  feed (state, "{\"type\":\"m.room.create\",\"state_key\":\"\",\"sender\":"
               "\"@alice:example.org\",\"content\":{\"room_version\":\"10\"}}");
  feed (state,
      "{\"type\":\"m.room.power_levels\",\"state_key\":\"\","
      "\"sender\":\"@alice:example.org\",\"content\":{\"users\":"
      "{\"@alice:example.org\":100},\"users_default\":0,\"state_default\":50,"
      "\"events\":{\"org.matrix.msc3401.call.member\":0}}}");
  feed (state, "{\"type\":\"m.room.encryption\",\"state_key\":\"\","
               "\"sender\":\"@alice:example.org\",\"content\":{\"algorithm\":"
               "\"m.megolm.v1.aes-sha2\"}}");
  fail_unless_equals_string (mrtc_call_state_get_room_version (state), "10");
  fail_unless (mrtc_call_state_is_encrypted (state));
  fail_unless (mrtc_call_state_can_send_state (
      state, ALICE, "org.matrix.msc4143.rtc.slot"));
  fail_if (mrtc_call_state_can_send_state (
      state, BOB, "org.matrix.msc4143.rtc.slot"));
  fail_unless (mrtc_call_state_can_send_state (
      state, BOB, "org.matrix.msc3401.call.member"));

  /* room v12: the creator outranks the power levels */
  feed (state, "{\"type\":\"m.room.create\",\"state_key\":\"\",\"sender\":"
               "\"@bob:example.org\",\"content\":{\"room_version\":\"12\"}}");
  fail_unless (mrtc_call_state_can_send_state (
      state, BOB, "org.matrix.msc4143.rtc.slot"));
}

GST_END_TEST;

/* The review's fuzz crash (finding 3): created_ts beyond 64 bits (json-glib
 * wraps it to a negative value) overflowed G_MAXINT64 - created_ts. */
GST_START_TEST (test_created_ts_bounds)
{
  const gchar *bad[]
      = { "-9000000000000000000", "0", "-1", "99999999999999999999999", NULL };
  guint i;

  for (i = 0; bad[i] != NULL; i++) {
    g_autofree gchar *content = g_strdup_printf (
        "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
        "\"created_ts\":%s,\"focus_active\":{\"type\":\"livekit\"}}",
        bad[i]);
    g_autofree gchar *ev = legacy_event (ALICE, "k", "$1", T0, content);
    g_autoptr (GError) error = NULL;
    g_autoptr (MrtcMember) m = parse_member (ev, &error);

    fail_unless (m == NULL, "created_ts %s accepted", bad[i]);
    g_assert_error (error, MRTC_MEMBER_ERROR, MRTC_MEMBER_ERROR_INVALID);
  }
  {
    /* a huge created_ts plus expires saturates instead of wrapping */
    g_autofree gchar *ev = legacy_event (ALICE, "k", "$1", T0,
        "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
        "\"created_ts\":9223372036854775000,\"expires\":14400000,"
        "\"focus_active\":{\"type\":\"livekit\"}}");
    g_autoptr (MrtcMember) m = parse_member (ev, NULL);

    fail_unless (m != NULL);
    fail_unless_equals_int64 (m->expires_ts, G_MAXINT64);
  }
  {
    /* no created_ts and a negative origin_server_ts: long expired */
    g_autofree gchar *ev = legacy_event (ALICE, "k", "$1",
        G_GINT64_CONSTANT (-9000000000000000000),
        "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
        "\"focus_active\":{\"type\":\"livekit\"}}");
    g_autoptr (MrtcMember) m = parse_member (ev, NULL);

    fail_unless (m != NULL);
    fail_unless (m->expires_ts < 0);
  }
}

GST_END_TEST;

/* Untrusted JSON goes through ext/json's pre-scan (finding 6). */
GST_START_TEST (test_json_limits)
{
  GString *deep = g_string_new ("{\"type\":");
  g_autofree gchar *deep_text = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autoptr (MrtcMember) m = NULL;
  guint i;

  for (i = 0; i < 20000; i++)
    g_string_append_c (deep, '[');
  deep_text = g_string_free (deep, FALSE);
  m = parse_member (deep_text, &error);
  fail_unless (m == NULL);
  g_assert_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID);
  g_clear_error (&error);

  node = mrtc_json_parse ("[1,2]", -1, 0, 4, &error);
  g_assert_no_error (error);
  fail_unless (node != NULL && JSON_NODE_HOLDS_ARRAY (node));
  g_clear_pointer (&node, json_node_unref);
  node = mrtc_json_parse ("[[[[[1]]]]]", -1, 0, 4, &error);
  fail_unless (node == NULL);
  g_assert_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID);
  g_clear_error (&error);
  node = mrtc_json_parse ("{\"a\":\"0123456789\"}", -1, 10, 4, &error);
  fail_unless (node == NULL);
  g_assert_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_TOO_LARGE);
  g_clear_error (&error);
  fail_unless (mrtc_json_object_from_string ("[]", -1, 0, 4, &error) == NULL);
  g_assert_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID);
}

GST_END_TEST;

/* Feeding a stored sticky event again must not extend its life (finding
 * 5): it goes in with the time it has left. */
GST_START_TEST (test_sticky_ttl_refeed)
{
  g_autoptr (MrtcStickyMap) a = mrtc_sticky_map_new (fake_clock, NULL);
  g_autoptr (MrtcStickyMap) b = mrtc_sticky_map_new (fake_clock, NULL);
  g_autofree gchar *json = g_strdup_printf (
      "{\"type\":\"org.matrix.msc4143.rtc.member\",\"sender\":\"%s\","
      "\"event_id\":\"$s1\",\"origin_server_ts\":%" G_GINT64_FORMAT
      ",\"msc4354_sticky\":{\"duration_ms\":3600000},\"unsigned\":{"
      "\"msc4354_sticky_duration_ttl_ms\":20000,\"age\":5},\"content\":%s}",
      BOB, T0, STICKY_JOIN (BOB, "BOBDEV", UUID1));
  g_autoptr (JsonObject) ev = parse_object (json);
  g_autoptr (JsonObject) again = NULL;
  const MrtcStickyEntry *e;

  fake_now = T0 + 1000;
  fail_unless_equals_int (mrtc_sticky_map_add (a, ROOM, ev), MRTC_STICKY_ADDED);
  e = mrtc_sticky_map_find_event (a, "$s1");
  fail_unless (e != NULL);
  fail_unless_equals_int64 (e->expires_at, T0 + 21000);
  fail_unless (mrtc_sticky_map_find_event (a, "$nope") == NULL);

  fake_now = T0 + 11000;
  again = mrtc_sticky_event_with_ttl (e->event, e->expires_at - fake_now);
  fail_unless_equals_int (
      mrtc_sticky_map_add (b, ROOM, again), MRTC_STICKY_ADDED);
  fail_unless_equals_int64 (
      mrtc_sticky_map_find_event (b, "$s1")->expires_at, T0 + 21000);
  /* other unsigned members are kept, the original is untouched */
  fail_unless (json_object_has_member (
      json_object_get_object_member (again, "unsigned"), "age"));
  fail_unless_equals_int64 (json_object_get_int_member (
                                json_object_get_object_member (ev, "unsigned"),
                                "msc4354_sticky_duration_ttl_ms"),
      20000);
}

GST_END_TEST;

/* One sender cannot fill the maps (finding 7); the update stays linear. */
GST_START_TEST (test_per_sender_limits)
{
  g_autoptr (MrtcCallState) state
      = mrtc_call_state_new (ROOM, NULL, fake_clock, NULL);
  g_autoptr (GPtrArray) changes = NULL;
  gint64 t;
  guint i;

  fake_now = T0 + 1000;
  feed_join (state, ALICE, "join");
  feed_join (state, BOB, "join");
  for (i = 0; i < 40; i++) {
    g_autofree gchar *id
        = g_strdup_printf ("%08u-0000-4000-8000-000000000000", i);
    g_autofree gchar *content = g_strdup_printf (
        "{\"slot_id\":\"m.call#ROOM\",\"application\":{\"type\":\"m.call\"},"
        "\"transports\":{\"published\":[{\"type\":\"livekit\"}]},"
        "\"member\":{\"device_id\":\"D%u\",\"user_id\":\"%s\",\"id\":\"%s\"},"
        "\"msc4354_sticky_key\":\"%s\"}",
        i, BOB, id, id);
    g_autofree gchar *ev_id = g_strdup_printf ("$b%u", i);
    g_autofree gchar *sticky
        = sticky_event (BOB, ev_id, T0 + i, 3600000, content);
    g_autofree gchar *key = g_strdup_printf ("_%s_D%u_m.call", ALICE, i);
    g_autofree gchar *legacy_content = g_strdup_printf (
        "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D%u\","
        "\"created_ts\":%" G_GINT64_FORMAT ",\"focus_active\":{\"type\":"
        "\"livekit\"}}",
        i, T0 + i);
    g_autofree gchar *legacy
        = legacy_event (ALICE, key, ev_id, T0 + i, legacy_content);

    feed (state, sticky);
    feed (state, legacy);
  }
  changes = update (state,
      MRTC_STICKY_MAX_KEYS_PER_SENDER + MRTC_CALL_STATE_MAX_LEGACY_PER_SENDER);
  g_ptr_array_unref (g_steal_pointer (&changes));
  fail_unless_equals_int (mrtc_call_state_get_evicted (state),
      80 - MRTC_STICKY_MAX_KEYS_PER_SENDER
          - MRTC_CALL_STATE_MAX_LEGACY_PER_SENDER);
  /* the newest stay */
  fail_unless (mrtc_call_state_find_member (state, BOB, "D39") != NULL);
  fail_unless (mrtc_call_state_find_member (state, BOB, "D0") == NULL);
  fail_unless (mrtc_call_state_find_member (state, ALICE, "D39") != NULL);
  fail_unless (mrtc_call_state_find_member (state, ALICE, "D0") == NULL);

  /* 20,000 members of distinct senders: an update without changes must not
   * be quadratic (it was 0.3 s for 10,000). */
  for (i = 0; i < 20000; i++) {
    g_autofree gchar *user = g_strdup_printf ("@u%u:example.org", i);
    g_autofree gchar *key = g_strdup_printf ("_%s_D_m.call", user);
    g_autofree gchar *ev = legacy_event (user, key, "$x", T0,
        "{\"application\":\"m.call\",\"call_id\":\"\",\"device_id\":\"D\","
        "\"focus_active\":{\"type\":\"livekit\"}}");

    feed_join (state, user, "join");
    feed (state, ev);
  }
  changes = update (state, 20000);
  g_ptr_array_unref (g_steal_pointer (&changes));
  t = g_get_monotonic_time ();
  changes = update (state, 0);
  t = g_get_monotonic_time () - t;
  GST_INFO (
      "update of 20032 members without changes: %" G_GINT64_FORMAT " us", t);
  fail_unless (
      t < 2 * G_USEC_PER_SEC, "update took %" G_GINT64_FORMAT " us", t);
}

GST_END_TEST;

/* A redacted legacy membership ends (finding 11). */
GST_START_TEST (test_redacted_legacy)
{
  g_autoptr (MrtcCallState) state
      = mrtc_call_state_new (ROOM, NULL, fake_clock, NULL);
  g_autofree gchar *legacy
      = legacy_event (ALICE, "k", "$l1", T0, LEGACY_JOIN_ALICE);
  g_autoptr (GPtrArray) changes = NULL;

  fake_now = T0 + 1000;
  feed_join (state, ALICE, "join");
  feed (state, legacy);
  changes = update (state, 1);
  g_ptr_array_unref (g_steal_pointer (&changes));
  feed (state,
      "{\"type\":\"m.room.redaction\",\"sender\":\"@alice:example.org\","
      "\"event_id\":\"$r\",\"content\":{\"redacts\":\"$l1\"}}");
  changes = update (state, 1);
  fail_unless_equals_int (CHANGE (changes, 0)->kind, MRTC_MEMBER_CHANGE_LEFT);
}

GST_END_TEST;

static Suite *
mrtc_member_suite (void)
{
  Suite *s = suite_create ("mrtc_member");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_legacy_join);
  tcase_add_test (tc, test_legacy_expiry_rules);
  tcase_add_test (tc, test_legacy_left);
  tcase_add_test (tc, test_legacy_malformed);
  tcase_add_test (tc, test_sticky_jssdk43);
  tcase_add_test (tc, test_sticky_seed_variants);
  tcase_add_test (tc, test_sticky_leave_forms);
  tcase_add_test (tc, test_sticky_malformed);
  tcase_add_test (tc, test_malformed_events);
  tcase_add_test (tc, test_identities);
  tcase_add_test (tc, test_ids);
  tcase_add_test (tc, test_slot_states);
  tcase_add_test (tc, test_builders);
  tcase_add_test (tc, test_sticky_map_conflicts);
  tcase_add_test (tc, test_sticky_map_expiry);
  tcase_add_test (tc, test_call_state_both_formats);
  tcase_add_test (tc, test_call_state_filters);
  tcase_add_test (tc, test_call_state_expiry);
  tcase_add_test (tc, test_call_state_slot);
  tcase_add_test (tc, test_call_state_room_state);
  tcase_add_test (tc, test_created_ts_bounds);
  tcase_add_test (tc, test_json_limits);
  tcase_add_test (tc, test_sticky_ttl_refeed);
  tcase_add_test (tc, test_per_sender_limits);
  tcase_add_test (tc, test_redacted_legacy);
  return s;
}

GST_CHECK_MAIN (mrtc_member);
