// Command pause is the pod sandbox process for the air-gapped kind node image:
// it holds the pod's namespaces, reaps orphaned children and exits on SIGINT or
// SIGTERM so pods stop promptly. (The upstream pause image cannot be pulled here.)
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
