# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cbz_stream_global_optspecs
    string join \n q/quiet v/verbose h/help V/version
end

function __fish_cbz_stream_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cbz_stream_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cbz_stream_using_subcommand
    set -l cmd (__fish_cbz_stream_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -s V -l version -d 'Print version'
complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -f -a "pack" -d 'Pack page images (directories, files or NDJSON page records) into CBZ archives'
complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -f -a "list" -d 'One record per entry of each archive: name, sizes, method, image format and size'
complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -f -a "unpack" -d 'Extract archives safely, one entry in flight'
complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -f -a "edit" -d 'Remove, move, insert or rename pages and drop junk, without ever risking the original'
complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -f -a "from-pdf" -d 'Scanned PDFs to CBZ: page images copied as they are, other pages rendered'
complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -f -a "convert" -d 'RAR (.cbr) and 7z (.cb7) comic archives to CBZ, one entry in flight'
complete -c cbz-stream -n "__fish_cbz_stream_needs_command" -f -a "cover" -d 'A thumbnail of an archive\'s first page (or --page N), in bounded memory'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -s o -l output-dir -d 'Write outputs under this directory, mirroring the input tree (see --base); default: beside each input' -r -F
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -l base -d 'The part of input paths not mirrored under --output-dir (default: none for relative paths, the parent directory for absolute ones)' -r -F
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -l keep-names -d 'Keep the pages\' names (relative to their common directory) instead of renaming them zero-padded (001.jpg, 002.jpg...) in natural order'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -l no-comic-info -d 'Do not generate a ComicInfo.xml when the pages come without one'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -s f -l force -d 'Overwrite existing outputs (by default they are skipped); an input of the run is never overwritten'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand pack" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand list" -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand list" -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand list" -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand list" -l no-images -d 'Do not read the first bytes of image entries for their format and dimensions'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand list" -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand list" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand list" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -l max-entries -d 'Most entries an archive may have (default: what the budget allows, at most 1000000)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -l max-entry-size -d 'Largest expanded size of one entry (default: the total limit)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -l max-total-size -d 'Largest expanded size of an archive (default: 90% of the free disk space)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -l max-ratio -d 'Largest expansion ratio of an entry over 1 MiB (uncompressed / compressed)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -s o -l output-dir -d 'Write outputs under this directory, mirroring the input tree (see --base); default: beside each input' -r -F
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -l base -d 'The part of input paths not mirrored under --output-dir (default: none for relative paths, the parent directory for absolute ones)' -r -F
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -l emit-records -d 'One record per extracted page (path = the page file) instead of one per archive, for `unpack --emit-records | <stage> | pack`'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -s f -l force -d 'Overwrite existing outputs (by default they are skipped); an input of the run is never overwritten'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand unpack" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand edit" -l remove -d 'Remove pages: 1-based numbers, ranges (3-5) or globs on names (*credits*), comma-separated; may be repeated' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand edit" -l move -d 'Move page FROM to position TO (1-based, counted after removals); may be repeated' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand edit" -l insert-blank -d 'Insert a white page (the size of its neighbour) so that it becomes page N (counted after removals and moves); may be repeated' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand edit" -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand edit" -l drop-junk -d 'Drop junk entries (.nfo, .sfv, .db, .DS_Store, Thumbs.db, desktop.ini, __MACOSX/); ComicInfo.xml is always kept'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand edit" -l rename -d 'Rename pages zero-padded (001.jpg...) in natural order'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand edit" -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand edit" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand edit" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand edit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -l dpi -d 'Resolution of rendered pages, in dots per inch' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -l render-format -d 'Encoding of rendered pages' -r -f -a "jpeg\t'JPEG, quality 92'
png\t'Lossless PNG'"
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -s o -l output-dir -d 'Write outputs under this directory, mirroring the input tree (see --base); default: beside each input' -r -F
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -l base -d 'The part of input paths not mirrored under --output-dir (default: none for relative paths, the parent directory for absolute ones)' -r -F
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -l render-all -d 'Render every page, even those that are one embedded image'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -l delete-source -d 'Delete the PDF once its archive is written and verified'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -s f -l force -d 'Overwrite existing outputs (by default they are skipped); an input of the run is never overwritten'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand from-pdf" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -s o -l output-dir -d 'Write outputs under this directory, mirroring the input tree (see --base); default: beside each input' -r -F
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -l base -d 'The part of input paths not mirrored under --output-dir (default: none for relative paths, the parent directory for absolute ones)' -r -F
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -s f -l force -d 'Overwrite existing outputs (by default they are skipped); an input of the run is never overwritten'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand convert" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -l size -d 'Longest side of the thumbnail in pixels' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -l page -d 'The page to use (1-based, in natural order)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -s o -l output-dir -d 'Write outputs under this directory, mirroring the input tree (see --base); default: beside each input' -r -F
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -l base -d 'The part of input paths not mirrored under --output-dir (default: none for relative paths, the parent directory for absolute ones)' -r -F
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -s f -l force -d 'Overwrite existing outputs (by default they are skipped); an input of the run is never overwritten'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c cbz-stream -n "__fish_cbz_stream_using_subcommand cover" -s h -l help -d 'Print help (see more with \'--help\')'
