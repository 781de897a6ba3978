package pkgindex

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// sitePackages is where Debian's python3-* packages put their modules.
const sitePackages = "usr/lib/python3/dist-packages"

// DebianWheels turns Debian's Python packages into the pip index's files:
// a py3-none-any wheel per package and its project page, as addProject
// makes them. dir holds one directory per package with the package's
// files and its control file in DEBIAN/, as scripts/debian-wheels.sh
// leaves them (apt-get download, dpkg-deb).
//
// A wheel holds the package's dist-packages tree and a dist-info made
// from its egg-info or dist-info: METADATA with Requires-Dist for the
// package's Depends on other python3-* packages (Debian strips the
// upstream requirements from requires.txt; its extras and markers are
// kept), entry_points.txt (pip makes the scripts), WHEEL and RECORD.
// Compiled files are left out (C speedups such as markupsafe's: the pure
// fallback is used), and so are symbolic links to files of other
// packages; dropped names them. A Depends on a python3-* package that is
// not in dir is an error: the index would not install.
func DebianWheels(dir string) (files map[string][]byte, dropped []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var pkgs []*debPackage
	dists := map[string]string{} // Debian package -> distribution name
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p, err := readDebPackage(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		pkgs = append(pkgs, p)
		dists[p.control["Package"]] = p.meta.get("Name")
	}
	if len(pkgs) == 0 {
		return nil, nil, fmt.Errorf("%s: no packages (run scripts/debian-wheels.sh)", dir)
	}
	files = map[string][]byte{}
	for _, p := range pkgs {
		name, wheel, drop, err := p.wheel(dists)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.control["Package"], err)
		}
		addProject(files, canonicalName(p.meta.get("Name")), name, wheel)
		dropped = append(dropped, drop...)
	}
	return files, dropped, nil
}

// debPackage is one extracted Debian package.
type debPackage struct {
	root    string            // the package's files
	control map[string]string // DEBIAN/control
	info    string            // its .egg-info or .dist-info, in root
	meta    *metadata         // PKG-INFO or METADATA
}

func readDebPackage(root string) (*debPackage, error) {
	b, err := os.ReadFile(filepath.Join(root, "DEBIAN", "control"))
	if err != nil {
		return nil, err
	}
	p := &debPackage{root: root, control: controlFields(string(b))}
	site := filepath.Join(root, sitePackages)
	infos, _ := filepath.Glob(filepath.Join(site, "*.egg-info"))
	more, _ := filepath.Glob(filepath.Join(site, "*.dist-info"))
	infos = append(infos, more...)
	if len(infos) != 1 {
		return nil, fmt.Errorf("want one .egg-info or .dist-info in %s, found %d", sitePackages, len(infos))
	}
	p.info = infos[0]
	metaFile := p.info // an egg-info may be the PKG-INFO file itself
	if fi, err := os.Stat(p.info); err == nil && fi.IsDir() {
		metaFile = filepath.Join(p.info, "PKG-INFO")
		if strings.HasSuffix(p.info, ".dist-info") {
			metaFile = filepath.Join(p.info, "METADATA")
		}
	}
	mb, err := os.ReadFile(metaFile)
	if err != nil {
		return nil, err
	}
	p.meta = parseMetadata(string(mb))
	if p.meta.get("Name") == "" || p.meta.get("Version") == "" {
		return nil, fmt.Errorf("%s: no Name or Version", metaFile)
	}
	return p, nil
}

// wheel makes the package's wheel; dists names the distribution of each
// Debian package there is a wheel of.
func (p *debPackage) wheel(dists map[string]string) (name string, wheel []byte, dropped []string, err error) {
	upstream := p.meta.all("Requires-Dist")
	var extras []string
	if b, err := os.ReadFile(filepath.Join(p.info, "requires.txt")); err == nil {
		var reqs []string
		reqs, extras = requiresTxt(string(b))
		upstream = append(upstream, reqs...)
	}
	deps, err := debianRequires(p.control["Depends"], dists, upstream)
	if err != nil {
		return "", nil, nil, err
	}
	meta := p.meta.withRequires(append(upstream, deps...), extras)

	escaped := strings.ReplaceAll(canonicalName(p.meta.get("Name")), "-", "_")
	version := strings.ReplaceAll(p.meta.get("Version"), "-", "_")
	distInfo := escaped + "-" + version + ".dist-info"
	var files []wheelFile
	site := filepath.Join(p.root, sitePackages)
	err = filepath.WalkDir(site, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(site, file)
		rel = filepath.ToSlash(rel)
		switch {
		case file == p.info:
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		case d.IsDir() && d.Name() == "__pycache__":
			return filepath.SkipDir
		case d.IsDir(), strings.HasSuffix(rel, ".pyc"):
			return nil
		case strings.HasSuffix(rel, ".so"):
			dropped = append(dropped, p.control["Package"]+": "+rel+" (compiled)")
			return nil
		}
		content, why, err := p.read(file, d)
		if err != nil {
			return err
		}
		if why != "" {
			dropped = append(dropped, p.control["Package"]+": "+rel+" ("+why+")")
			return nil
		}
		files = append(files, wheelFile{rel, content})
		return nil
	})
	if err != nil {
		return "", nil, nil, err
	}
	files = append(files,
		wheelFile{distInfo + "/METADATA", []byte(meta)},
		wheelFile{distInfo + "/WHEEL", []byte(wheelMeta("runhost pkgindex, from Debian's " + p.control["Package"] + " " + p.control["Version"]))})
	for _, extra := range []string{"entry_points.txt", "top_level.txt"} {
		if b, err := os.ReadFile(filepath.Join(p.info, extra)); err == nil {
			files = append(files, wheelFile{distInfo + "/" + extra, b})
		}
	}
	wheel, err = makeWheel(distInfo, files)
	return escaped + "-" + version + "-py3-none-any.whl", wheel, dropped, err
}

// read is a file of the package: a regular file, or the file a symbolic
// link names within the package. A link out of the package (to another
// package's file) is no content, and why says so.
func (p *debPackage) read(file string, d fs.DirEntry) (content []byte, why string, err error) {
	if d.Type()&fs.ModeSymlink == 0 {
		b, err := os.ReadFile(file)
		return b, "", err
	}
	target, err := os.Readlink(file)
	if err != nil {
		return nil, "", err
	}
	resolved := filepath.Join(filepath.Dir(file), target)
	if filepath.IsAbs(target) {
		resolved = filepath.Join(p.root, target)
	}
	if rel, err := filepath.Rel(p.root, resolved); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, "a link out of the package to " + target, nil
	}
	fi, err := os.Lstat(resolved)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, "a link to " + target + ", another package's file", nil
	}
	b, err := os.ReadFile(resolved)
	return b, "", err
}

// controlFields parses a Debian control file's fields (one paragraph;
// continuation lines joined with a space).
func controlFields(s string) map[string]string {
	out := map[string]string{}
	var last string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			if last != "" {
				out[last] += " " + strings.TrimSpace(line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = k
		out[k] = strings.TrimSpace(v)
	}
	return out
}

var (
	debRelation  = regexp.MustCompile(`^([a-z0-9][a-z0-9+.-]+)(?::[a-z0-9-]+)?\s*(?:\(\s*(<<|<=|=|>=|>>)\s*([^)\s]+)\s*\))?`)
	plainVersion = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
	debOperators = map[string]string{"<<": "<", "<=": "<=", "=": "==", ">=": ">=", ">>": ">"}
)

// debianRequires turns a Depends field into Requires-Dist values: each
// relation on a python3-* package becomes its distribution (dists maps
// packages to distributions), with the version bound where the version is
// upstream's plain numbers. Left out: relations the interpreter satisfies
// (python3, or an alternative to it), on other packages (C libraries,
// ca-certificates), and on a distribution upstream names already (in
// upstream, whatever its marker: Debian's Depends makes upstream's extras
// and Windows-only requirements unconditional). What remains must be in
// dists: Debian needs it (six, which it unbundles from urllib3).
func debianRequires(depends string, dists map[string]string, upstream []string) ([]string, error) {
	named := map[string]bool{}
	for _, r := range upstream {
		named[canonicalName(requirementName(r))] = true
	}
	var out []string
	for _, group := range strings.Split(depends, ",") {
		group = strings.TrimSpace(group)
		if group == "" {
			continue
		}
		type relation struct{ pkg, op, version string }
		var alts []relation
		interpreter := false
		for _, alt := range strings.Split(group, "|") {
			m := debRelation.FindStringSubmatch(strings.TrimSpace(alt))
			if m == nil {
				return nil, fmt.Errorf("cannot read the Depends relation %q", alt)
			}
			if m[1] == "python3" || strings.HasPrefix(m[1], "python3.") || m[1] == "python3-minimal" {
				interpreter = true
			}
			if strings.HasPrefix(m[1], "python3-") {
				alts = append(alts, relation{m[1], m[2], m[3]})
			}
		}
		if interpreter || len(alts) == 0 || slices.ContainsFunc(alts, func(r relation) bool {
			dist, ok := dists[r.pkg]
			if !ok {
				dist = strings.TrimPrefix(r.pkg, "python3-")
			}
			return named[canonicalName(dist)]
		}) {
			continue
		}
		i := slices.IndexFunc(alts, func(r relation) bool { _, ok := dists[r.pkg]; return ok })
		if i < 0 {
			return nil, fmt.Errorf("it depends on %s, which is not among the packages (scripts/debian-wheels.sh lists them)", group)
		}
		req := dists[alts[i].pkg]
		if v := upstreamVersion(alts[i].version); alts[i].op != "" && v != "" {
			req += debOperators[alts[i].op] + v
		}
		out = append(out, req)
	}
	return out, nil
}

// upstreamVersion is the upstream part of a Debian version (no epoch, no
// revision) when it is plain numbers (1.21.1), else "".
func upstreamVersion(v string) string {
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	if i := strings.LastIndex(v, "-"); i >= 0 {
		v = v[:i]
	}
	if !plainVersion.MatchString(v) {
		return ""
	}
	return v
}

// requiresTxt turns a setuptools requires.txt into Requires-Dist values
// and the extras its sections name. Sections are [extra], [extra:marker]
// and [:marker].
func requiresTxt(s string) (reqs, extras []string) {
	var extra, marker string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			extra, marker, _ = strings.Cut(line[1:len(line)-1], ":")
			if extra != "" && !slices.Contains(extras, extra) {
				extras = append(extras, extra)
			}
			continue
		}
		req, own, _ := strings.Cut(line, ";")
		var markers []string
		for _, m := range []string{strings.TrimSpace(own), marker} {
			if m != "" {
				markers = append(markers, m)
			}
		}
		if extra != "" {
			markers = append(markers, `extra == "`+extra+`"`)
		}
		if len(markers) > 1 {
			for i, m := range markers {
				markers[i] = "(" + m + ")"
			}
		}
		req = strings.TrimSpace(req)
		if len(markers) > 0 {
			req += "; " + strings.Join(markers, " and ")
		}
		reqs = append(reqs, req)
	}
	return reqs, extras
}

// metadata is a core metadata file (PKG-INFO, METADATA): its header
// lines, continuations kept with their field, and the body after them.
type metadata struct {
	fields []string // "Key: value" with continuation lines
	body   string
}

func parseMetadata(s string) *metadata {
	head, body, _ := strings.Cut(s, "\n\n")
	m := &metadata{body: body}
	for _, line := range strings.Split(head, "\n") {
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(m.fields) > 0 {
			m.fields[len(m.fields)-1] += "\n" + line
			continue
		}
		if line != "" {
			m.fields = append(m.fields, line)
		}
	}
	return m
}

// get is the first value of field key.
func (m *metadata) get(key string) string {
	for _, f := range m.fields {
		if k, v, ok := strings.Cut(f, ":"); ok && strings.EqualFold(k, key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (m *metadata) all(key string) []string {
	var out []string
	for _, f := range m.fields {
		if k, v, ok := strings.Cut(f, ":"); ok && strings.EqualFold(k, key) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// withRequires is the metadata with requirements and extras added that
// it does not have: a requirement without a marker is left out where one
// on the same distribution without a marker is there already.
func (m *metadata) withRequires(reqs, extras []string) string {
	have := m.all("Requires-Dist")
	unconditional := map[string]bool{}
	for _, r := range have {
		if !strings.Contains(r, ";") {
			unconditional[canonicalName(requirementName(r))] = true
		}
	}
	fields := slices.Clone(m.fields)
	for _, r := range reqs {
		if slices.Contains(have, r) {
			continue
		}
		if !strings.Contains(r, ";") {
			n := canonicalName(requirementName(r))
			if unconditional[n] {
				continue
			}
			unconditional[n] = true
		}
		have = append(have, r)
		fields = append(fields, "Requires-Dist: "+r)
	}
	provided := m.all("Provides-Extra")
	for _, e := range extras {
		if !slices.Contains(provided, e) {
			provided = append(provided, e)
			fields = append(fields, "Provides-Extra: "+e)
		}
	}
	out := strings.Join(fields, "\n") + "\n"
	if m.body != "" {
		out += "\n" + m.body
	}
	return out
}

var requirementNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*`)

// requirementName is the distribution a requirement names.
func requirementName(req string) string {
	return requirementNameRE.FindString(strings.TrimSpace(req))
}

var nameSeparators = regexp.MustCompile(`[-_.]+`)

// canonicalName is a distribution name as pip compares them (PEP 503).
func canonicalName(name string) string {
	return strings.ToLower(nameSeparators.ReplaceAllString(name, "-"))
}
