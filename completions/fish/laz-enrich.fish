complete -c laz-enrich -s R -l radius -d 'Neighbourhood radius in metres: neighbours are the points at distance <= R, the point itself included' -r
complete -c laz-enrich -s k -l k -d 'Neighbourhoods of the K nearest points (3D, the point itself included; ties broken by coordinates) instead of a radius; exact across tiles: a point whose K nearest may lie beyond its tile\'s halo is computed again with a wider one' -r
complete -c laz-enrich -s F -l features -d 'Features to compute, comma-separated, or `all` (laz-enrich\'s FEATURES)' -r
complete -c laz-enrich -l ground-radius -d 'Height above ground looks for the nearest ground point (class 2) in XY within this many metres (the halo grows to it); beyond, the height is NaN' -r
complete -c laz-enrich -l tile-points -d 'Most points (owned plus halo) a tile may hold, below what the budget allows (default: the budget\'s capacity, at most 1048576)' -r
complete -c laz-enrich -l names -d 'Names of the new dimensions' -r -f -a "jakteristics\t'jakteristics / CloudCompare names (nx, surface_variation, number_of_neighbors...)'
ign\t'IGN LiDAR HD enrich names (normal_x, curvature, ...)'"
complete -c laz-enrich -l viewpoint -d 'Orient normals towards this point (X,Y,Z in the file\'s coordinates) instead of up' -r
complete -c laz-enrich -l neighbours -d 'Take halo points from the LAS/LAZ files in this directory (adjacent tiles), so features at this file\'s borders equal those of the merged cloud' -r -F
complete -c laz-enrich -l format -d 'Output container' -r -f -a "laz\t'LASzip-compressed LAS'
las\t'Uncompressed LAS'"
complete -c laz-enrich -l suffix -d 'Appended to the input\'s stem to name the output: a name part (no `/`, no `..`); an output that would be the input itself is refused' -r
complete -c laz-enrich -l temp-dir -d 'Directory for temporary files (the point records plus about 12 + 4 x features bytes a point; free space is checked first); default: $TMPDIR when set, else the output\'s directory' -r -F
complete -c laz-enrich -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c laz-enrich -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c laz-enrich -s o -l output-dir -d 'Write outputs under this directory, mirroring the input tree (see --base); default: beside each input' -r -F
complete -c laz-enrich -l base -d 'The part of input paths not mirrored under --output-dir (default: none for relative paths, the parent directory for absolute ones)' -r -F
complete -c laz-enrich -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c laz-enrich -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c laz-enrich -s f -l force -d 'Overwrite existing outputs (by default they are skipped); an input of the run is never overwritten'
complete -c laz-enrich -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c laz-enrich -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c laz-enrich -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c laz-enrich -s h -l help -d 'Print help (see more with \'--help\')'
complete -c laz-enrich -s V -l version -d 'Print version'
