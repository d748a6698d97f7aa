// Package config is the node's configuration file (--config.file): the
// volumes and observers flags express badly, decoded strictly so that a
// mistake names its file, line and key.
//
// Load reads, decodes and validates a file; File.Validate checks a File
// however it was made. Every error is one line, a *Error of the form
// "file:line: key.path: message", and never holds a secret: credentials
// are Secrets naming a file or an environment variable, read with
// Secret.Value when used.
//
// The keys, their defaults and an example are in docs/configuration.md.
//
// A File is a plain value: it is safe to read from any goroutine, and
// Validate and Value only read the file system.
package config
