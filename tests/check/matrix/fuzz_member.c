/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* libFuzzer target for the MatrixRTC membership parser: any bytes go
 * through the member parser, the slot parser and the call state (sticky map
 * included) without crashing, leaking or tripping the sanitizers. */

#include <stdint.h>

#include "mrtcjson.h"
#include "mrtcmember.h"
#include "mrtccallstate.h"

static gint64 fuzz_now = G_GINT64_CONSTANT (1760000000000);

static gint64
fuzz_clock (gpointer user_data)
{
  return fuzz_now;
}

static void
quiet_log (const gchar *domain, GLogLevelFlags level, const gchar *message,
    gpointer user_data)
{
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MrtcMember) member = NULL;
  g_autoptr (JsonNode) root = NULL;
  static gboolean init;

  if (!init) {
    g_log_set_default_handler (quiet_log, NULL);
    init = TRUE;
  }

  member = mrtc_member_parse_json (
      (const gchar *)data, size, "!fuzz:example.org", &error);
  if (member != NULL) {
    /* what the session reads of a member */
    (void)mrtc_member_get_livekit_service_url (member);
    (void)mrtc_member_same_content (member, member);
  }

  if (size > MRTC_MAX_EVENT_SIZE)
    return 0;
  /* as the client parses what it receives (ext/json's pre-scan) */
  root = mrtc_json_parse ((const gchar *)data, size, MRTC_MAX_EVENT_SIZE,
      MRTC_JSON_MAX_DEPTH_ANY, NULL);
  if (root != NULL && JSON_NODE_HOLDS_OBJECT (root)) {
    JsonObject *event = json_node_get_object (root);
    g_autoptr (MrtcCallState) state
        = mrtc_call_state_new ("!fuzz:example.org", NULL, fuzz_clock, NULL);
    g_autoptr (GPtrArray) changes = NULL;
    JsonObject *content = mrtc_json_get_object (event, "content");
    const gchar *sender = mrtc_json_get_string (event, "sender");

    (void)mrtc_slot_parse (content, "m.call#ROOM");
    (void)mrtc_slot_parse_jssdk (content, "m.call#ROOM");
    if (sender != NULL) {
      g_autoptr (JsonObject) member_ev = json_object_new ();
      JsonObject *member_content = json_object_new ();

      json_object_set_string_member (member_ev, "type", "m.room.member");
      json_object_set_string_member (member_ev, "state_key", sender);
      json_object_set_string_member (member_content, "membership", "join");
      json_object_set_object_member (member_ev, "content", member_content);
      mrtc_call_state_handle_event (state, member_ev);
    }
    mrtc_call_state_handle_event (state, event);
    changes = mrtc_call_state_update (state);
    g_ptr_array_unref (changes);
    /* the same event again, then past every expiry */
    mrtc_call_state_handle_event (state, event);
    fuzz_now += 5 * 3600 * 1000;
    changes = mrtc_call_state_update (state);
    (void)mrtc_call_state_next_deadline (state);
    fuzz_now -= 5 * 3600 * 1000;
    {
      /* a sticky event fed again with the time it has left */
      g_autoptr (JsonObject) again = mrtc_sticky_event_with_ttl (event, 1000);

      mrtc_call_state_handle_event (state, again);
    }
  }
  return 0;
}
