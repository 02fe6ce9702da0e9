/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* A MatrixRTC member in a process of its own, for the test that kills it:
 *   MRTC_MEMBER_PASSWORD=... mrtc_member_proc HS_URL USER ROOM_ID
 *       legacy|sticky DELAY_MS RESTART_MS
 * It logs in, joins the room's call with a delayed leave, prints
 * "JOINED <device id>" and then runs until killed. The password comes from
 * the environment, not the command line (which any process can read). */

#include <stdio.h>
#include <stdlib.h>

#include "mrtcsession.h"

int
main (int argc, char **argv)
{
  g_autoptr (MrtcClient) client = NULL;
  g_autoptr (MrtcSession) session = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  g_autoptr (JsonObject) transport = json_object_new ();
  MrtcSessionConfig config;

  const gchar *password = g_getenv ("MRTC_MEMBER_PASSWORD");

  /* stdout carries the "JOINED" line protocol: keep GLib's debug output
   * (G_MESSAGES_DEBUG=all) off it. */
  g_log_writer_default_set_use_stderr (TRUE);

  if (argc != 7 || password == NULL) {
    fprintf (stderr,
        "usage: %s HS_URL USER PASSWORD ROOM_ID legacy|sticky "
        "DELAY_MS RESTART_MS\n",
        argv[0]);
    return 2;
  }
  client = mrtc_client_new (argv[1]);
  if (!mrtc_client_login_password (client, argv[2], password, NULL, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  session = mrtc_session_new (client, argv[3], NULL);
  mrtc_session_config_init (&config);
  config.format = g_str_equal (argv[4], "sticky")
                      ? MRTC_MEMBERSHIP_FORMAT_STICKY
                      : MRTC_MEMBERSHIP_FORMAT_LEGACY;
  config.delayed_leave_ms = g_ascii_strtoll (argv[5], NULL, 10);
  config.delayed_leave_restart_ms = g_ascii_strtoll (argv[6], NULL, 10);
  json_object_set_string_member (transport, "type", "livekit");
  json_object_set_string_member (
      transport, "livekit_service_url", "http://127.0.0.1:8080");
  config.transport = json_object_ref (transport);
  mrtc_session_set_config (session, &config);
  mrtc_session_config_clear (&config);

  if (!mrtc_session_start (session, &error)
      || !mrtc_session_join (session, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  printf ("JOINED %s\n", mrtc_client_get_device_id (client));
  fflush (stdout);
  loop = g_main_loop_new (NULL, FALSE);
  g_main_loop_run (loop);
  return 0;
}
