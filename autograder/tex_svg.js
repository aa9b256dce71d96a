// TeX to SVG with the MathJax the site ships (node_modules/mathjax): reads
// [[tex, display], ...] as JSON on stdin, writes [svg-or-null, ...] on stdout.
// Used by autograder/tex_svg.py, so feedback pages show math without any script.
const mathjax = process.argv[2];
require(mathjax).init({
  loader: {load: ['input/tex', 'output/svg']},
  svg: {fontCache: 'none'},                          // each formula self-contained
}).then((MathJax) => {
  let data = '';
  process.stdin.on('data', (chunk) => { data += chunk; });
  process.stdin.on('end', () => {
    const out = JSON.parse(data).map(([tex, display]) => {
      try {
        return MathJax.startup.adaptor.outerHTML(MathJax.tex2svg(tex, {display}));
      } catch (error) {
        return null;
      }
    });
    process.stdout.write(JSON.stringify(out));
  });
}).catch((error) => { console.error(error.message); process.exit(1); });
