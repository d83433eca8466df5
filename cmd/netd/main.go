// Command netd is the netd daemon and its CLI in one binary: `netd daemon`
// runs the daemon, every other command is a thin client of package api.
package main

import "os"

func main() {
	app := newApp(os.Stdin, os.Stdout, os.Stderr)
	os.Exit(run(app, os.Args))
}
