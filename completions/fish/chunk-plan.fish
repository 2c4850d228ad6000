complete -c chunk-plan -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c chunk-plan -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c chunk-plan -l for -d 'Plan only for this tool (repeatable); default: every tool that can process the input' -r -f -a "strip-convert\t''
tile-enhance\t''
spot-detect\t''
fits-stack\t''
laz-enrich\t''
cbz-stream\t''
pdf-to-cbz\t''"
complete -c chunk-plan -l shards -d 'Spread the inputs over N machines, balancing the estimated work (writes plan.shard)' -r
complete -c chunk-plan -l order -d 'Output order; any order but `input` (and --shards) reads all inputs first' -r -f -a "input\t'As the inputs came (streams: each record is written as soon as it is planned)'
largest\t'Most work first: the order that keeps parallel workers busy to the end'
smallest\t'Least work first'"
complete -c chunk-plan -l profile -d 'Encoding profile (options given too override its values): bnf, kb-master, kb-access, loc-ndnp' -r -f -a "bnf\t''
kb-master\t''
kb-access\t''
loc-ndnp\t''"
complete -c chunk-plan -l tile -d 'Tile size: N or WxH (default: 256, or with --memory-limit the largest that fits)' -r
complete -c chunk-plan -s R -l radius -d 'Neighbourhood radius in metres: neighbours are the points at distance <= R, the point itself included' -r
complete -c chunk-plan -s k -l k -d 'Neighbourhoods of the K nearest points (3D, the point itself included; ties broken by coordinates) instead of a radius; exact across tiles: a point whose K nearest may lie beyond its tile\'s halo is computed again with a wider one' -r
complete -c chunk-plan -s F -l features -d 'Features to compute, comma-separated, or `all` (laz-enrich\'s FEATURES)' -r
complete -c chunk-plan -l ground-radius -d 'Height above ground looks for the nearest ground point (class 2) in XY within this many metres (the halo grows to it); beyond, the height is NaN' -r
complete -c chunk-plan -l tile-points -d 'Most points (owned plus halo) a tile may hold, below what the budget allows (default: the budget\'s capacity, at most 1048576)' -r
complete -c chunk-plan -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c chunk-plan -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c chunk-plan -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c chunk-plan -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chunk-plan -s V -l version -d 'Print version'
