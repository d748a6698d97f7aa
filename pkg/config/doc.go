// Package config is the node's configuration file (--config.file): the
// volumes and observers flags express badly, decoded strictly so that a
// mistake names its file, line and key.
package config
