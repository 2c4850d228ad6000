complete -c strip-convert -l profile -d 'Encoding profile (options given too override its values): bnf, kb-master, kb-access, loc-ndnp' -r -f -a "bnf\t''
kb-master\t''
kb-access\t''
loc-ndnp\t''"
complete -c strip-convert -l tile -d 'Tile size: N or WxH (default: 256, or with --memory-limit the largest that fits)' -r
complete -c strip-convert -l bnf-class -d 'BnF profile class: photo (1:4, photographs and heritage documents), print (1:6, colour print), gray (1:16, greyscale)' -r -f -a "photo\t''
print\t''
gray\t''"
complete -c strip-convert -l page -d 'Convert only page N (counting from 1); default: every page' -r
complete -c strip-convert -l rates -d 'Lossy by compression ratio per layer, decreasing (e.g. 64,16,4); 9/7 wavelet' -r
complete -c strip-convert -l psnr -d 'Lossy by PSNR in dB per layer, increasing (e.g. 30,40,50); 9/7 wavelet' -r
complete -c strip-convert -l levels -d 'Decomposition levels (capped by tile and image size; the record says what was used)' -r
complete -c strip-convert -l codeblock -d 'Code-block size: N or WxH, powers of two from 4 to 1024, area at most 4096' -r
complete -c strip-convert -l precincts -d 'Precinct sizes from the highest resolution down, each N or WxH (powers of two); the last repeats for lower resolutions (e.g. 256,256,128)' -r
complete -c strip-convert -l order -d 'Progression order: LRCP, RLCP, RPCL, PCRL, CPRL' -r
complete -c strip-convert -l layers -d 'Quality layers (lossless: lower layers at rates from 1:200 down, the last lossless)' -r
complete -c strip-convert -l bypass -d 'Code-block bypass (lazy) mode: the lower bit-planes\' significance and refinement passes are stored raw instead of arithmetic-coded, about 10% less CPU and no larger (lossless stays exact). Default: yes without a profile, else the profile\'s choice' -r
complete -c strip-convert -l tileparts -d 'Split tiles into tile-parts by resolution (R), layer (L) or component (C)' -r
complete -c strip-convert -l xml -d 'Put this file\'s content in an `xml ` box (at most 4 MiB; it counts in the memory budget)' -r -F
complete -c strip-convert -l xmp -d 'Put this XMP packet in the XMP uuid box (default: the TIFF\'s XMP, if any, with trailing NULs and whitespace trimmed, left out with a warning in the record when it is not well-formed XML; at most 4 MiB, counted in the memory budget)' -r -F
complete -c strip-convert -l is-part-of -d 'XMP dcterms:isPartOf (bnf profile)' -r
complete -c strip-convert -l provenance -d 'XMP dcterms:provenance (bnf profile)' -r
complete -c strip-convert -l relation -d 'XMP dc:relation (bnf profile)' -r
complete -c strip-convert -l dc-source -d 'XMP dc:source (bnf profile)' -r
complete -c strip-convert -l min-psnr -d 'Lossy verification: lowest acceptable PSNR in dB' -r
complete -c strip-convert -l min-ssim -d 'Lossy verification: lowest acceptable SSIM, from 0 to 1' -r
complete -c strip-convert -l hdu -d 'FITS: the HDU to read, a number (the primary HDU is 0), an EXTNAME, or EXTNAME,EXTVER (astropy\'s (\'SCI\', 2)); default the first HDU holding an image' -r
complete -c strip-convert -l plane -d 'FITS: read plane N of a cube as the frame (0-based, the axes past NAXIS2 flattened: astropy\'s data.reshape(-1, NAXIS2, NAXIS1)[N]); without it a cube is refused' -r
complete -c strip-convert -l split-cfa -d 'FITS: split each CFA (Bayer) frame into CFA0_..CFA3_<name>.fits (even/odd rows and columns, bit-exact); the pattern names their FILTER; auto reads BAYERPAT/ROWORDER' -r
complete -c strip-convert -l normalize -d 'FITS: normalise each frame to the reference by median (L) and MAD (S): additive x-(Li-Lr), multiplicative x*Lr/Li, addscale (Sr/Si)(x-Li)+Lr, mulscale x*(Sr/Si)(Lr/Li); writes norm_<name>.fits, or with --stack normalises on the fly' -r -f -a "additive\t'x - (L_i - L_r)'
multiplicative\t'x * L_r / L_i'
addscale\t'(S_r / S_i)(x - L_i) + L_r'
mulscale\t'x * (S_r / S_i)(L_r / L_i)'"
complete -c strip-convert -l reference -d 'FITS: the normalisation reference frame (default: the first input)' -r -F
complete -c strip-convert -l stack -d 'FITS: stack every input into one float32 frame (--output), row block by row block' -r -f -a "mean\t'Mean'
median\t'Median'
sigma-clip\t'Sigma clipping around the median, then the mean'
winsorized\t'Winsorized sigma clipping, then the mean'
minmax\t'Min/max rejection, then the mean'"
complete -c strip-convert -l output -d 'FITS: the stacked frame\'s path (with --stack)' -r -F
complete -c strip-convert -l sigma-low -d 'FITS: sigma-clip/winsorized: reject values below centre - N sigma' -r
complete -c strip-convert -l sigma-high -d 'FITS: sigma-clip/winsorized: reject values above centre + N sigma' -r
complete -c strip-convert -l reject-low -d 'FITS: minmax: the N lowest values of each pixel are rejected' -r
complete -c strip-convert -l reject-high -d 'FITS: minmax: the N highest values of each pixel are rejected' -r
complete -c strip-convert -l rejection-map -d 'FITS: with --stack, also write the per-pixel count of rejected values here' -r -F
complete -c strip-convert -l compress -d 'FITS: tile-compress the FITS outputs, one row a tile: auto (RICE_1 for integer images, GZIP_2 for floating-point ones), rice, gzip or gzip2; lossless unless --quantize is given' -r -f -a "auto\t'RICE_1 for integer images, GZIP_2 for floating-point ones (RICE_1 with --quantize)'
rice\t'RICE_1 (floating-point images only with --quantize)'
gzip\t'GZIP_1'
gzip2\t'GZIP_2 (bytes shuffled by significance)'"
complete -c strip-convert -l quantize -d 'FITS: with --compress, quantise floating-point outputs (lossy, as fpack -q Q): steps of a tile\'s noise sigma / Q, or of -Q when Q is negative, dithered; auto then means RICE_1' -r
complete -c strip-convert -s m -l memory-limit -d 'Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of available memory (60%). Default: 70% of the smallest of available memory, the cgroup limit and the room left under it (the limit less what other processes in the cgroup hold, page cache not counted)' -r
complete -c strip-convert -s j -l jobs -d 'Workers or threads at most (default: the CPUs this process may use); fewer run when the budget holds fewer, and the record says how many ran. Tools that run several inputs at once keep up to this many in flight, or twice the CPUs without -j (each input gets at least one thread: small inputs wait on I/O part of the time)' -r
complete -c strip-convert -s o -l output-dir -d 'Write outputs under this directory, mirroring the input tree (see --base); default: beside each input' -r -F
complete -c strip-convert -l base -d 'The part of input paths not mirrored under --output-dir (default: none for relative paths, the parent directory for absolute ones)' -r -F
complete -c strip-convert -s r -l recursive -d 'Expand directories into the files below them (sorted, hidden files skipped)'
complete -c strip-convert -l lossless -d 'Lossless: 5/3 reversible wavelet and RCT (the default without a lossy profile)'
complete -c strip-convert -l sop -d 'Start-of-packet markers'
complete -c strip-convert -l eph -d 'End-of-packet-header markers'
complete -c strip-convert -l plt -d 'Packet length markers (PLT) in tile-part headers'
complete -c strip-convert -l tlm -d 'Tile-part length markers (TLM) in the main header'
complete -c strip-convert -l no-icc -d 'Do not copy the TIFF\'s ICC profile (write the enumerated sRGB or greyscale space)'
complete -c strip-convert -l no-xmp -d 'Do not copy the TIFF\'s XMP packet'
complete -c strip-convert -l verify -d 'Decode the written file tile by tile and compare with the source as libtiff reads it (independent of the converter\'s reader; status `partial` when libtiff is missing or lacks the codec): lossless must match exactly (JPEG-compressed sources within 6 levels, mean 0.5, the difference between JPEG decoders); lossy reports PSNR, SSIM and MSE against the thresholds'
complete -c strip-convert -l cfa-rgb -d 'FITS: with --split-cfa, write RGB_<name>.fits (float32 planes R, (G1+G2)/2, B) instead'
complete -c strip-convert -l weighted -d 'FITS: with --stack (not median), weight each frame by 1/sigma^2 in the final mean, sigma its noise: 1.4826 x its MAD, times the normalisation factor if any'
complete -c strip-convert -l unordered -d 'With several inputs running at once (-j, the budget permitting), write each input\'s records as soon as it is done instead of in input order'
complete -c strip-convert -s f -l force -d 'Overwrite existing outputs (by default they are skipped); an input of the run is never overwritten'
complete -c strip-convert -s n -l dry-run -d 'Say what would be done, write nothing'
complete -c strip-convert -s q -l quiet -d 'Less on stderr: -q hides warnings and progress, -qq hides per-input errors too'
complete -c strip-convert -s v -l verbose -d 'More on stderr: -v explains decisions, -vv traces'
complete -c strip-convert -s h -l help -d 'Print help (see more with \'--help\')'
complete -c strip-convert -s V -l version -d 'Print version'
