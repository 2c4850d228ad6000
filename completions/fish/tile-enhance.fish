# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_tile_enhance_global_optspecs
    string join \n q/quiet v/verbose h/help V/version
end

function __fish_tile_enhance_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_tile_enhance_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_tile_enhance_using_subcommand
    set -l cmd (__fish_tile_enhance_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c tile-enhance -n "__fish_tile_enhance_needs_command" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c tile-enhance -n "__fish_tile_enhance_needs_command" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c tile-enhance -n "__fish_tile_enhance_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tile-enhance -n "__fish_tile_enhance_needs_command" -s V -l version -d 'Print version'
complete -c tile-enhance -n "__fish_tile_enhance_needs_command" -f -a "enhance" -d 'Tone curves, filters and resizing, tiled and seamless'
complete -c tile-enhance -n "__fish_tile_enhance_needs_command" -f -a "thumbnail" -d 'Shrink-on-load thumbnails'
complete -c tile-enhance -n "__fish_tile_enhance_needs_command" -f -a "spots" -d 'Spot and star detection, exact at tile borders, with multi-channel readout'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l gamma -d 'Gamma: max (v/max)^(1/G)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l brightness -d 'Brightness factor (ImageEnhance.Brightness)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l contrast -d 'Contrast factor around the greyscale mean (ImageEnhance.Contrast)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l autocontrast -d 'Autocontrast, CUTOFF percent of samples cut at each end (ImageOps.autocontrast)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l levels -d 'Levels: BLACK..WHITE (sample values) stretched to the full range, then gamma' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l unsharp -d 'Unsharp mask: Gaussian SIGMA, AMOUNT (1 = 100%), THRESHOLD in levels (default 0)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l blur -d 'Gaussian blur of SIGMA pixels' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l median -d 'Median of the (2R+1)^2 square' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l resize -d 'Lanczos3 resize: WxH (fit inside; --fill: cover and crop) or P%' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l max-pixels -d 'Shrink images of more than N pixels to at most N (Lanczos3)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l edge -d 'Rows and columns outside the image for neighbourhood steps' -r -f -a "replicate\t'The edge row or column repeated (scipy.ndimage `nearest`)'
mirror\t'Reflected about the edge sample, not repeated (scipy.ndimage `mirror`)'"
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l format -d 'Output format (default: the input\'s)' -r -f -a "tiff\t'Striped TIFF'
png\t'PNG'
jpeg\t'Baseline JPEG (8-bit gray or RGB)'"
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l quality -d 'JPEG quality (1-100)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l compression -d 'TIFF compression (default: the input\'s when written here, else deflate)' -r -f -a "none\t'Uncompressed'
deflate\t'Deflate with the horizontal predictor'
lzw\t'LZW with the horizontal predictor'
zstd\t'Zstandard (level 9, code 50000 as libtiff writes it) with the horizontal predictor'"
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l tile -d 'Write a tiled TIFF, tiles of W x H (multiples of 16), instead of strips' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l band-rows -d 'Rows per band (default: planned from the memory budget)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -s o -l output-dir -d 'Write outputs under this directory, mirroring the input tree (see --base); default: beside each input' -r -F
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l base -d 'The part of input paths not mirrored under --output-dir (default: none for relative paths, the parent directory for absolute ones)' -r -F
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l default-chain -d 'The default chain here (curve, gamma 0.9, brightness 1.03, contrast 1.05, autocontrast 1); it is also what runs when no step is given'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l curve -d 'The comic-reader S-curve'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l fill -d '--resize WxH covers the box and crops the centre instead of fitting inside'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -s f -l force -d 'Overwrite existing outputs (by default they are skipped); an input of the run is never overwritten'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand enhance" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -s s -l size -d 'Thumbnail size in pixels: the longest side (--fit) or the square\'s side (--fill)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -l format -d 'Output format' -r -f -a "jpeg\t'Baseline JPEG at --quality'
png\t'PNG (keeps alpha)'"
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -l quality -d 'JPEG quality (1-100)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -s o -l output-dir -d 'Write outputs under this directory, mirroring the input tree (see --base); default: beside each input' -r -F
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -l base -d 'The part of input paths not mirrored under --output-dir (default: none for relative paths, the parent directory for absolute ones)' -r -F
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -l fit -d 'Fit the whole image within N x N (the default)'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -l fill -d 'Fill N x N: scale the shortest side to N and crop the rest around the centre'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -s f -l force -d 'Overwrite existing outputs (by default they are skipped); an input of the run is never overwritten'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand thumbnail" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s s -l sigma -d 'Gaussian sigma in pixels, or a range START:STOP:COUNT (COUNT sigmas evenly spaced, ends included, as blob_log\'s min_sigma, max_sigma, num_sigma) for a multi-scale search; each spot\'s scale is reported' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l spot-radius -d 'Spot radius (with --pixel-size, in the same unit): sigma = min distance = R / P pixels, as big-fish derives them (the distance truncated to whole pixels)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l pixel-size -d 'Pixel size, in the unit of --spot-radius' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l fwhm -d 'Star full width at half maximum in pixels: sigma = F / 2.3548' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s d -l min-distance -d 'Local maxima within this many pixels (Chebyshev) are merged (default ceil(sigma), the largest sigma of a range)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s t -l threshold -d 'Keep maxima whose response is above T (default: big-fish\'s elbow method)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l channel -d 'Another channel to read out (and maybe detect on): NAME=PATH, repeated' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l detect-on -d 'The channel spots are detected on' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l readout -d 'What is read from each channel at a spot: `pixel`, `mean:R` or `max:R` (a disc of radius R pixels)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l tile -d 'Tile side in pixels, below what the budget allows (for tests and tuning)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l pool -d 'Maxima the first pass keeps at most (for tests: a small pool forces the second detection pass)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s o -l output-dir -d 'Write outputs under this directory, mirroring the input tree (see --base); default: beside each input' -r -F
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l base -d 'The part of input paths not mirrored under --output-dir (default: none for relative paths, the parent directory for absolute ones)' -r -F
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l subpixel -d 'Add y_sub, x_sub columns: a 3-point Gaussian fit of the response per axis'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s f -l force -d 'Overwrite existing outputs (by default they are skipped); an input of the run is never overwritten'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c tile-enhance -n "__fish_tile_enhance_using_subcommand spots" -s h -l help -d 'Print help (see more with \'--help\')'
