//go:build !unix

package main

import "time"

// processCPU returns 0: kvctl reads its CPU time with getrusage, which
// this system lacks.
func processCPU() time.Duration { return 0 }
