//go:build !linux

package loadbench

import (
	"context"
	"errors"
)

// ServeEpollProxyCommand is the hidden loadbench subcommand that runs the
// go-epoll target, a Linux-only prototype.
const ServeEpollProxyCommand = "serve-epoll-proxy"

// ServeEpollProxy is Linux-only: it drives epoll directly.
func ServeEpollProxy([]string) error { return errors.New("go-epoll needs Linux") }

func startGoEpoll(context.Context, *Env, string) (*Instance, error) {
	return nil, errors.New("go-epoll needs Linux")
}

func startGoEpollGoroutineExchange(context.Context, *Env, string) (*Instance, error) {
	return nil, errors.New("go-epoll needs Linux")
}
