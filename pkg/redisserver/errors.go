package redisserver

import "errors"

// ErrNotInstalled is returned by Start when the redis-server binary cannot
// be found.
var ErrNotInstalled = errors.New("redis-server not found on PATH: install it (Debian/Ubuntu: sudo apt-get install redis-server) or point jetmetrics at a running Redis with --redis.url")
