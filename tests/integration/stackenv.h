/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MATRIXRTC_STACK_ENV_H__
#define __MATRIXRTC_STACK_ENV_H__

#include <glib.h>

G_BEGIN_DECLS

/* The local stack's description, written by tests/env/up as KEY=VALUE lines
 * (default $XDG_CACHE_HOME/gst-matrixrtc/stack/env, or $MATRIXRTC_STACK_ENV).
 * Integration tests fail, not skip, when the stack is not up. */

gboolean stack_env_load (GError **error);

/* The value of @key; aborts the test with a clear message when it is absent. */
const gchar *stack_env_get (const gchar *key);

/* The value of @key, or NULL. */
const gchar *stack_env_lookup (const gchar *key);

/* Registers the user @localpart with @password through Synapse's
 * shared-secret admin API (MATRIXRTC_REGISTRATION_SECRET); returns its user
 * id, or NULL with @error set. */
gchar *stack_env_register_user (
    const gchar *localpart, const gchar *password, GError **error);

G_END_DECLS

#endif /* __MATRIXRTC_STACK_ENV_H__ */
