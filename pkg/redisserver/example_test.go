package redisserver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
)

// A redis-server on a unix socket, persisting to an AOF in dir.
func ExampleStart() {
	dir, err := os.MkdirTemp("", "redisserver-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redisserver.Start(ctx, redisserver.Config{Dir: dir, Socket: filepath.Join(dir, "redis.sock")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		if err := s.Stop(ctx); err != nil {
			fmt.Println(err)
		}
	}()
	c := redis.NewClient(s.Options())
	defer c.Close()

	if err := c.Set(ctx, "up", "1", 0).Err(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Get(ctx, "up").Val())
	// Output: 1
}
