// Command podrunner runs the loopback pod runner (test infrastructure, see
// package podrunner) on its own against a test control plane, for example
// the one make cluster-up starts, to try the conformance suite's backends by
// hand:
//
//	bin/podrunner -kubeconfig bin/cluster/kubeconfig -echo-basic bin/echo-basic
//
// It runs until interrupted, then stops every Pod process and removes every
// network namespace it created. Needs root. Never point it at a real
// cluster: it binds every unscheduled Pod to itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"portico.dev/portico/conformance/podrunner"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "bin/cluster/kubeconfig", "kubeconfig of the test control plane")
	echoBin := flag.String("echo-basic", "bin/echo-basic", "binary run for the suite's echo-basic image")
	workDir := flag.String("work-dir", "bin/podrunner", "Pod directories and process logs")
	nodeName := flag.String("node-name", podrunner.DefaultNodeName, "Node to register and bind Pods to")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*kubeconfig, *echoBin, *workDir, *nodeName, log); err != nil {
		log.Error("podrunner", "err", err)
		os.Exit(1)
	}
}

func run(kubeconfig, echoBin, workDir, nodeName string, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root to create network namespaces")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if echoBin, err = filepath.Abs(echoBin); err != nil {
		return err
	}
	runner, err := podrunner.New(podrunner.Config{
		Client:   client,
		Images:   map[string]podrunner.Image{podrunner.EchoBasicImage: podrunner.EchoBasic(echoBin)},
		WorkDir:  workDir,
		NodeName: nodeName,
		Logger:   log,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runner.Run(ctx, nil)
}
