/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MRTC_CLIENT_H__
#define __MRTC_CLIENT_H__

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "mrtcstickymap.h"

G_BEGIN_DECLS

#define MRTC_CLIENT_ERROR (mrtc_client_error_quark ())
GQuark mrtc_client_error_quark (void);

/**
 * MrtcClientError:
 *
 * Error codes of MRTC_CLIENT_ERROR. Matrix errors keep their errcode at the
 * start of the message ("M_FORBIDDEN: ..."); mrtc_client_error_get_errcode()
 * returns it.
 */
typedef enum
{
  MRTC_CLIENT_ERROR_FAILED,         /* other Matrix errcode */
  MRTC_CLIENT_ERROR_NETWORK,        /* no HTTP response */
  MRTC_CLIENT_ERROR_BAD_RESPONSE,   /* not JSON / not what the API says */
  MRTC_CLIENT_ERROR_FORBIDDEN,      /* M_FORBIDDEN */
  MRTC_CLIENT_ERROR_NOT_FOUND,      /* M_NOT_FOUND */
  MRTC_CLIENT_ERROR_UNKNOWN_TOKEN,  /* M_UNKNOWN_TOKEN / M_MISSING_TOKEN */
  MRTC_CLIENT_ERROR_LIMIT_EXCEEDED, /* M_LIMIT_EXCEEDED */
  MRTC_CLIENT_ERROR_UNRECOGNIZED,   /* M_UNRECOGNIZED */
  MRTC_CLIENT_ERROR_NOT_LOGGED_IN,
  MRTC_CLIENT_ERROR_WRONG_THREAD, /* sync call from the client's thread */
  MRTC_CLIENT_ERROR_CANCELLED,
  MRTC_CLIENT_ERROR_MAX_DELAY_EXCEEDED, /* M_MAX_DELAY_EXCEEDED (MSC4140):
                                         * the message ends with
                                         * "[max_delay N ms]" when the server
                                         * says N */
} MrtcClientError;

/* The Matrix errcode of @error ("M_FORBIDDEN"), or NULL (newly allocated). */
gchar *mrtc_client_error_get_errcode (const GError *error);

#define MRTC_TYPE_CLIENT (mrtc_client_get_type ())
G_DECLARE_FINAL_TYPE (MrtcClient, mrtc_client, MRTC, CLIENT, GObject);

/* Response bodies are read up to a limit (MrtcRequest.max_response_bytes),
 * then parsed behind ext/json's pre-scan (nesting at most
 * MRTC_JSON_MAX_DEPTH_ANY): a bigger or deeper body fails the call with
 * MRTC_CLIENT_ERROR_BAD_RESPONSE. Error bodies are parsed only up to
 * MRTC_CLIENT_MAX_RESPONSE_SMALL. */
#define MRTC_CLIENT_MAX_RESPONSE_SMALL (64 * 1024)
#define MRTC_CLIENT_MAX_RESPONSE_DEFAULT (4 * 1024 * 1024)
#define MRTC_CLIENT_MAX_RESPONSE_LARGE (16 * 1024 * 1024) /* /sync, state */

/**
 * MrtcRequest:
 *
 * One client-server API call. @path starts with "/_matrix/" (or is a full
 * URL); query values are escaped by the client. @max_response_bytes
 * defaults to MRTC_CLIENT_MAX_RESPONSE_DEFAULT (4 MiB); raise it for calls
 * whose answers may be bigger.
 */
typedef struct
{
  gchar *method;
  gchar *path;
  GPtrArray *query;             /* key, value, key, value, ... */
  JsonNode *body;               /* or NULL */
  gboolean no_auth;             /* send without the access token */
  gboolean secret_body;         /* never log the body (login) */
  guint max_rate_limit_retries; /* 429 retries (default 5) */
  guint timeout_ms;             /* 0: the client's default */
  gsize max_response_bytes;     /* longest body read (0: the default) */
} MrtcRequest;

MrtcRequest *mrtc_request_new (const gchar *method, const gchar *path);
void mrtc_request_add_query (
    MrtcRequest *req, const gchar *key, const gchar *value);
void mrtc_request_take_body (MrtcRequest *req, JsonNode *body);
/* Takes ownership of @body. */
void mrtc_request_set_body_object (MrtcRequest *req, JsonObject *body);
void mrtc_request_free (MrtcRequest *req);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MrtcRequest, mrtc_request_free);

/* A client on @homeserver_url ("http://127.0.0.1:8008"); its own thread and
 * GMainContext run until the last reference goes (a running sync loop does
 * not keep the client alive: dropping the last reference stops it). */
MrtcClient *mrtc_client_new (const gchar *homeserver_url);

GMainContext *mrtc_client_get_context (MrtcClient *client);
const gchar *mrtc_client_get_homeserver_url (MrtcClient *client);
/* Borrowed: valid until the next login or whoami on this client (they
 * replace the strings); use the dup forms when one may run concurrently. */
const gchar *mrtc_client_get_user_id (MrtcClient *client);
const gchar *mrtc_client_get_device_id (MrtcClient *client);
gchar *mrtc_client_dup_user_id (MrtcClient *client);
gchar *mrtc_client_dup_device_id (MrtcClient *client);
gboolean mrtc_client_is_logged_in (MrtcClient *client);

/* Runs @func on the client's thread (from any thread). */
void mrtc_client_invoke (
    MrtcClient *client, GSourceFunc func, gpointer data, GDestroyNotify notify);

/* A fresh transaction id. */
gchar *mrtc_client_new_txn_id (MrtcClient *client);

/* Generic calls. The async form must be called on the client's thread (its
 * callback runs there); the blocking form from any other thread. Both take
 * ownership of @req. Result: the response JSON (object or array). */
void mrtc_client_call_async (MrtcClient *client, MrtcRequest *req,
    GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data);
JsonNode *mrtc_client_call_finish (
    MrtcClient *client, GAsyncResult *result, GError **error);
JsonNode *mrtc_client_call (
    MrtcClient *client, MrtcRequest *req, GError **error);

/* Request builders for the calls the session makes asynchronously. */
MrtcRequest *mrtc_request_send_event (MrtcClient *client, const gchar *room_id,
    const gchar *type, JsonObject *content, gint64 sticky_duration_ms,
    gint64 delay_ms);
MrtcRequest *mrtc_request_send_state (const gchar *room_id, const gchar *type,
    const gchar *state_key, JsonObject *content, gint64 sticky_duration_ms,
    gint64 delay_ms);
/* @action: "restart", "cancel" or "send"; @legacy_form: POST
 * .../delayed_events/{id} {"action": ...} instead of .../{id}/{action}. */
MrtcRequest *mrtc_request_delayed_event (
    const gchar *delay_id, const gchar *action, gboolean legacy_form);

/* Blocking conveniences (not on the client's thread). */
gboolean mrtc_client_login_password (MrtcClient *client, const gchar *user,
    const gchar *password, const gchar *device_id, GError **error);
/* Uses an existing access token; user and device come from whoami. */
gboolean mrtc_client_login_token (MrtcClient *client, const gchar *access_token,
    const gchar *device_id, GError **error);
gboolean mrtc_client_whoami (MrtcClient *client, GError **error);
gboolean mrtc_client_fetch_versions (MrtcClient *client, GError **error);
/* After fetch_versions: whether unstable_features[@feature] is true. */
gboolean mrtc_client_has_feature (MrtcClient *client, const gchar *feature);
gboolean mrtc_client_supports_version (
    MrtcClient *client, const gchar *version);
gchar *mrtc_client_join_room (
    MrtcClient *client, const gchar *id_or_alias, GError **error);
gchar *mrtc_client_create_room (
    MrtcClient *client, JsonObject *body, GError **error);
JsonArray *mrtc_client_get_room_state (
    MrtcClient *client, const gchar *room_id, GError **error);
/* Returns the event id (or the delay id when @delay_ms >= 0). */
gchar *mrtc_client_send_event (MrtcClient *client, const gchar *room_id,
    const gchar *type, JsonObject *content, gint64 sticky_duration_ms,
    gint64 delay_ms, GError **error);
gchar *mrtc_client_send_state (MrtcClient *client, const gchar *room_id,
    const gchar *type, const gchar *state_key, JsonObject *content,
    gint64 delay_ms, GError **error);
/* Tries the current endpoint form, then the legacy one on M_UNRECOGNIZED. */
gboolean mrtc_client_delayed_event_action (MrtcClient *client,
    const gchar *delay_id, const gchar *action, GError **error);
/* @messages: {user_id: {device_id: content}}. */
gboolean mrtc_client_send_to_device (MrtcClient *client, const gchar *type,
    JsonObject *messages, GError **error);
/* {access_token, token_type, matrix_server_name, expires_in}. */
JsonObject *mrtc_client_request_openid_token (
    MrtcClient *client, GError **error);
/* The homeserver's RTC transports: GET .../rtc/transports (stable, then
 * unstable), then .well-known/matrix/client org.matrix.msc4143.rtc_foci. */
JsonArray *mrtc_client_discover_transports (MrtcClient *client, GError **error);

/* Sync loop (long poll) on the client's thread. Emits "sync" (JsonObject
 * response), "to-device" (JsonObject event) and "sync-error" (GError*).
 * Backs off exponentially on errors (honours retry_after_ms) and resumes
 * after homeserver restarts. */
void mrtc_client_start_sync (MrtcClient *client, guint timeout_ms);
void mrtc_client_stop_sync (MrtcClient *client);
/* Counted form for users sharing the client (MrtcSession uses it): the loop
 * runs while it was started and not stopped, or while holds remain. On
 * M_UNKNOWN_TOKEN the loop stops for everyone ("sync-error" says why). */
void mrtc_client_hold_sync (MrtcClient *client, guint timeout_ms);
void mrtc_client_release_sync (MrtcClient *client);
/* Client thread only. */
gboolean mrtc_client_is_syncing (MrtcClient *client);
/* Number of successful sync responses so far. */
guint mrtc_client_get_sync_count (MrtcClient *client);

/* The unexpired sticky events the client has seen in @room_id (borrowed
 * JsonObjects, client thread only). */
GPtrArray *mrtc_client_get_sticky_events (
    MrtcClient *client, const gchar *room_id);

/* The same as new copies whose unsigned.msc4354_sticky_duration_ttl_ms is
 * the time each has left, so that feeding them again does not extend their
 * life (array of JsonObject, client thread only). */
GPtrArray *mrtc_client_dup_sticky_events (
    MrtcClient *client, const gchar *room_id);
/* When the sticky event @event_id the client has seen expires (ms since the
 * epoch), or -1 (client thread only). */
gint64 mrtc_client_get_sticky_expiry (
    MrtcClient *client, const gchar *event_id);

/* Test hook: the client's clock (ms since the epoch). */
void mrtc_client_set_clock (
    MrtcClient *client, MrtcClockFunc clock, gpointer user_data);

G_END_DECLS

#endif /* __MRTC_CLIENT_H__ */
