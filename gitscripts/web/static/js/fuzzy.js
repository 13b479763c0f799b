// Fuzzy, multi-word matching of scripts by display name, filename, path and description: every
// word must be found in one of them, whole or as letters in order ("wlrt" finds "well_rates").
// One function serves the tree's filter and the "go to script" dialog.

const FIELDS = [
  ["display_name", 3],
  ["filename", 3],
  ["logical_path", 2],
  ["description", 1],
];

/** 0 when `word` is not in `text`; more for a whole word at a word's start, less for letters
 * in order (only in names: a description would match almost any short word that way). */
function wordScore(word, text, letters) {
  const at = text.indexOf(word);
  if (at >= 0) return at === 0 || /[\s/_.-]/.test(text[at - 1]) ? 3 : 2;
  if (!letters) return 0;
  let from = 0;
  for (const letter of word) {
    from = text.indexOf(letter, from) + 1;
    if (!from) return 0;
  }
  return 0.5;
}

/** The scripts matching `query`, best first (then by path); all of them, by path, for none. */
export function matchScripts(scripts, query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return [];
  const scored = [];
  for (const script of scripts) {
    const texts = FIELDS.map(([name, weight]) => [(script[name] || "").toLowerCase(), weight]);
    let total = 0;
    for (const word of words) {
      let best = 0;
      for (const [text, weight] of texts)
        best = Math.max(best, wordScore(word, text, weight > 1) * weight);
      if (!best) {
        total = 0;
        break;
      }
      total += best;
    }
    if (total) scored.push({ script, score: total });
  }
  scored.sort(
    (a, b) => b.score - a.score || a.script.logical_path.localeCompare(b.script.logical_path),
  );
  return scored.map((entry) => entry.script);
}
