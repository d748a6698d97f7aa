// Package purestorage reports a Pure Storage FlashArray volume's
// performance through the FlashArray REST API 2.x: it exchanges a
// long-lived API token for a session (POST /api/<version>/login with an
// api-token header; the session is the x-auth-token response header) and
// reads GET /api/<version>/volumes/performance?names=<volume>, following
// continuation tokens, logging in again once when the session has expired
// (401).
//
// A Volume is safe for concurrent use: its polls share one session.
package purestorage
