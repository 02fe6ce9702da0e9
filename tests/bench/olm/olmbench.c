/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * Benchmark (issue 6): time to distribute a new media key to N devices
 * (default 50) over established Olm sessions: rotate the key, build the
 * io.element.call.encryption_keys content, Olm-encrypt it for every device
 * and serialise the /sendToDevice body. Target: < 200 ms for 50 devices.
 *
 * Usage: olmbench [devices] [rounds]
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>
#include <glib/gstdio.h>

#include "mrtcolmaccount.h"
#include "mrtcolmmediakeys.h"

static const guint8 pickle_key[32] = "benchbenchbenchbenchbenchbench!!";

static gint
compare_double (gconstpointer a, gconstpointer b)
{
  gdouble x = *(const gdouble *)a, y = *(const gdouble *)b;

  return x < y ? -1 : x > y;
}

static JsonObject *
claim_one (MrtcOlmAccount *owner)
{
  g_autoptr (JsonObject) otks = NULL;
  JsonObject *claimed = json_object_new ();
  GList *members;

  mrtc_olm_account_generate_one_time_keys (owner, 1);
  otks = mrtc_olm_account_one_time_keys (owner);
  members = json_object_get_members (otks);
  json_object_set_object_member (claimed, members->data,
      json_object_ref (json_object_get_object_member (otks, members->data)));
  g_list_free (members);
  mrtc_olm_account_mark_published (owner);
  return claimed;
}

int
main (int argc, char **argv)
{
  guint n_devices = argc > 1 ? (guint)atoi (argv[1]) : 50;
  guint rounds = argc > 2 ? (guint)atoi (argv[2]) : 20;
  /* One more peer than recipients: the benchmark's rotation is caused by
   * the last one leaving. */
  guint n_peers = n_devices + 1;
  g_autoptr (MrtcOlmAccount) me = NULL;
  g_autoptr (MrtcOlmMediaKeyManager) manager = NULL;
  g_autoptr (GPtrArray) peers
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_account_free);
  g_autoptr (GPtrArray) members
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  g_autoptr (GPtrArray) devices = g_ptr_array_new ();
  g_autofree gchar *store_dir = NULL;
  g_autofree gchar *store_path = NULL;
  gint64 save_start;
  gdouble save_ms;
  gdouble *times;
  gsize body_len = 0;
  GError *error = NULL;
  guint i, r;

  if (n_devices == 0 || rounds == 0) {
    g_printerr ("usage: %s [devices] [rounds]\n", argv[0]);
    return 2;
  }
  store_dir = g_dir_make_tmp ("olmbench-XXXXXX", &error);
  g_assert_no_error (error);
  store_path = g_build_filename (store_dir, "olm.store", NULL);
  me = mrtc_olm_account_open (
      "@me:bench", "ME", store_path, pickle_key, sizeof (pickle_key), &error);
  g_assert_no_error (error);
  manager = mrtc_olm_media_key_manager_new ("@me:bench", "ME", NULL, NULL);
  mrtc_olm_media_key_manager_set_use_key_delay (manager, 0);
  g_ptr_array_add (members,
      mrtc_olm_member_new ("@me:bench", "ME", "me", "@me:bench:ME", 1));

  /* Set-up (not timed): N peers whose devices we know, with sessions. */
  for (i = 0; i < n_peers; i++) {
    g_autofree gchar *user = g_strdup_printf ("@peer%u:bench", i);
    g_autofree gchar *device = g_strdup_printf ("DEV%u", i);
    g_autofree gchar *identity = g_strdup_printf ("%s:%s", user, device);
    MrtcOlmAccount *peer = mrtc_olm_account_open (
        user, device, NULL, pickle_key, sizeof (pickle_key), &error);
    g_autoptr (JsonObject) keys = NULL;
    g_autoptr (JsonObject) claimed = NULL;
    const MrtcOlmDevice *dev;

    g_assert_no_error (error);
    keys = mrtc_olm_account_device_keys (peer);
    dev = mrtc_olm_account_add_device (me, keys, user, device, &error);
    g_assert_no_error (error);
    claimed = claim_one (peer);
    if (!mrtc_olm_account_create_outbound_session (me, dev, claimed, &error))
      g_error ("session: %s", error->message);
    g_ptr_array_add (peers, peer);
    g_ptr_array_add (
        members, mrtc_olm_member_new (user, device, identity, identity, 1));
  }
  mrtc_olm_media_key_manager_update_members (manager, members);
  while (TRUE) {
    MrtcOlmMediaKeyAction *a = mrtc_olm_media_key_manager_pop_action (manager);

    if (a == NULL)
      break;
    mrtc_olm_media_key_action_free (a);
  }

  times = g_new0 (gdouble, rounds);
  for (r = 0; r < rounds; r++) {
    gint64 start = g_get_monotonic_time ();
    MrtcOlmMediaKeyAction *action = NULL;
    g_autoptr (JsonObject) content = NULL;
    g_autoptr (JsonObject) messages = NULL;
    g_autoptr (JsonObject) body = json_object_new ();
    g_autofree gchar *text = NULL;

    /* A member leaves and comes back: the manager rotates the key. */
    g_ptr_array_remove_index (members, members->len - 1);
    mrtc_olm_media_key_manager_update_members (manager, members);
    while ((action = mrtc_olm_media_key_manager_pop_action (manager)) != NULL
           && action->kind != MRTC_OLM_MEDIA_KEY_ACTION_SEND)
      mrtc_olm_media_key_action_free (action);
    g_assert (action != NULL);

    g_ptr_array_set_size (devices, 0);
    for (i = 0; i < action->targets->len; i++) {
      MrtcOlmMember *t = g_ptr_array_index (action->targets, i);

      g_ptr_array_add (devices, (gpointer)mrtc_olm_account_lookup_device (
                                    me, t->user_id, t->device_id));
    }
    content = mrtc_olm_media_key_content_build ("!room:bench", action->index,
        action->key, MRTC_OLM_MEDIA_KEY_LEN, "ME", "me",
        g_get_real_time () / 1000);
    messages = mrtc_olm_account_encrypt_to_devices (
        me, devices, MRTC_OLM_MEDIA_KEY_EVENT_TYPE, content, NULL, &error);
    g_assert_no_error (error);
    json_object_set_object_member (
        body, "messages", g_steal_pointer (&messages));
    text = mrtc_olm_json_object_to_string (body);
    body_len = strlen (text);
    times[r] = (g_get_monotonic_time () - start) / 1000.0;
    mrtc_olm_media_key_action_free (action);

    /* Put the member back (not timed). */
    {
      g_autofree gchar *user = g_strdup_printf ("@peer%u:bench", n_peers - 1);
      g_autofree gchar *device = g_strdup_printf ("DEV%u", n_peers - 1);
      g_autofree gchar *identity = g_strdup_printf ("%s:%s", user, device);

      g_ptr_array_add (
          members, mrtc_olm_member_new (user, device, identity, identity, 1));
      mrtc_olm_media_key_manager_update_members (manager, members);
      while ((action = mrtc_olm_media_key_manager_pop_action (manager)))
        mrtc_olm_media_key_action_free (action);
    }
  }

  /* Persisting the account with its sessions (done once per batch). */
  save_start = g_get_monotonic_time ();
  if (!mrtc_olm_account_save (me, &error))
    g_error ("save: %s", error->message);
  save_ms = (g_get_monotonic_time () - save_start) / 1000.0;
  g_unlink (store_path);
  g_rmdir (store_dir);

  qsort (times, rounds, sizeof (gdouble), compare_double);
  g_print ("olm key distribution: %u devices, %u rounds: median %.2f ms, "
           "min %.2f ms, max %.2f ms (target < 200 ms), body %" G_GSIZE_FORMAT
           " bytes\n",
      n_devices, rounds, times[rounds / 2], times[0], times[rounds - 1],
      body_len);
  g_print ("olm store save with %u sessions: %.2f ms\n", n_peers, save_ms);
  g_free (times);
  return 0;
}
