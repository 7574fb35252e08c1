// validate-dashboard: strict structural check of Grafana dashboard JSON files with grafana-foundation-sdk.
//
// Each file is strict-unmarshalled (an unknown or misspelt field, or a wrongly typed option, fails) and then
// validated. Both calls return cog.BuildErrors, a slice that is a typed nil when all is well: the length is
// what tells, not err == nil. Exit status 1 and one line per problem when any file fails.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func problems(err error) []string {
	var built cog.BuildErrors
	if errors.As(err, &built) {
		out := make([]string, 0, len(built))
		for _, one := range built {
			out = append(out, one.Error())
		}
		return out
	}
	if err != nil {
		return []string{err.Error()}
	}
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate-dashboard FILE.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		raw, err := os.ReadFile(path)
		if err != nil {
			fmt.Printf("%s: %v\n", path, err)
			failed = true
			continue
		}
		var board dashboard.Dashboard
		found := problems(board.UnmarshalJSONStrict(raw))
		if len(found) == 0 {
			found = problems(board.Validate())
		}
		for _, problem := range found {
			fmt.Printf("%s: %s\n", path, problem)
		}
		if len(found) > 0 {
			failed = true
		} else {
			fmt.Printf("%s: ok (%d panels)\n", path, len(board.Panels))
		}
	}
	if failed {
		os.Exit(1)
	}
}
