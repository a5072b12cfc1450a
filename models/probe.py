"""Fixed texts that probe an encoder: the int8 self-check and the parity/batch tests encode these.

Written for this project (not taken from any data set): 24 questions and 40 passages of 1 to ~250 tokens
over many subjects, numbers, code, names and punctuation, so that a quantised graph sees short and long
inputs and the large activation channels that real text produces. :data:`PROBE_TEXTS` has all 64.
"""

from __future__ import annotations

PROBE_QUERIES: tuple[str, ...] = (
    "what is the boiling point of water at altitude",
    "how do vaccines train the immune system",
    "define photosynthesis",
    "who wrote the theory of general relativity",
    "symptoms of vitamin d deficiency in adults",
    "how long does it take to fly from london to tokyo",
    "python list comprehension with condition",
    "why is the sky blue",
    "average salary of a registered nurse in texas",
    "what causes inflation to rise",
    "how to rotate api keys without downtime",
    "is coffee bad for your heart",
    "bm25 vs dense retrieval",
    "capital of australia",
    "what does hnsw stand for",
    "how many bones are in the human hand",
    "difference between a virus and a bacterium",
    "when did the berlin wall fall",
    "how to cook rice in a pressure cooker",
    "what is the speed of light in km/s",
    "lucene index too new error",
    "best time of year to visit iceland",
    "how does a mortgage amortization schedule work",
    "x",
)

_PASSAGES: tuple[str, ...] = (
    "Water boils at 100 degrees Celsius at sea level, but the boiling point drops by roughly one degree "
    "for every 300 metres of altitude because the air pressure is lower.",
    "Vaccines expose the immune system to a harmless piece or weakened form of a pathogen, so that B cells "
    "and T cells learn to recognise it and respond quickly to a later infection.",
    "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make "
    "glucose and release oxygen.",
    "Albert Einstein published the general theory of relativity in 1915; it describes gravity as the "
    "curvature of spacetime caused by mass and energy.",
    "Low vitamin D can cause fatigue, bone pain, muscle weakness and mood changes. Doctors measure "
    "25-hydroxyvitamin D in the blood; levels below 20 ng/mL are usually called deficient.",
    "A non-stop flight from London Heathrow to Tokyo Haneda takes about 14 hours, depending on winds and "
    "the route flown around restricted airspace.",
    "squares = [x * x for x in range(10) if x % 2 == 0]  # keeps only the even numbers",
    "Sunlight is scattered by the molecules of the atmosphere. Shorter wavelengths scatter much more than "
    "longer ones (Rayleigh scattering), so blue light reaches our eyes from every direction of the sky.",
    "Registered nurses in Texas earned a mean annual wage of about $79,000 in 2022, according to the "
    "Bureau of Labor Statistics, with higher pay in Houston and Dallas.",
    "Inflation rises when demand outpaces supply, when production costs such as energy and wages go up, "
    "or when the money supply grows faster than output.",
    "To rotate a key without downtime, issue the new key, deploy it alongside the old one, switch clients "
    "over, watch the error rate, and only then revoke the old key.",
    "Moderate coffee drinking (three to four cups a day) is not linked to a higher risk of heart disease "
    "in most large cohort studies; very high intakes can raise blood pressure for a short time.",
    "BM25 ranks documents by term frequency and inverse document frequency with length normalisation, "
    "while dense retrieval compares learned vector embeddings of the query and the passage.",
    "Canberra is the capital city of Australia. It was chosen as a compromise between Sydney and Melbourne "
    "and became the seat of government in 1927.",
    "HNSW, hierarchical navigable small world, is a graph index for approximate nearest-neighbour search: "
    "each layer is a proximity graph, and a search descends from the sparse top layer to the dense bottom one.",
    "The human hand has 27 bones: 8 carpals in the wrist, 5 metacarpals in the palm and 14 phalanges in "
    "the fingers.",
    "Bacteria are single-celled organisms that can live on their own; viruses are much smaller, have no "
    "metabolism of their own and can only reproduce inside a host cell.",
    "The Berlin Wall fell on 9 November 1989, when East German authorities opened the border crossings.",
    "Rinse one cup of rice, add one and a quarter cups of water, cook at high pressure for three minutes "
    "and let the pressure release naturally for ten minutes.",
    "Light travels at 299,792 kilometres per second in a vacuum, a constant written c.",
    "IllegalArgumentException: indexCreatedVersionMajor is in the future: 10 (needs Lucene 10 or later).",
    "Iceland's summer brings the midnight sun and open highland roads; from September to March the long "
    "nights are the best time to see the northern lights.",
    "An amortization schedule lists every payment of a loan, splitting it into interest, charged on the "
    "remaining balance, and principal, which pays the balance down; early payments are mostly interest.",
    "ok",
    "Mitochondria produce most of a cell's ATP through oxidative phosphorylation. The electron transport "
    "chain in the inner membrane pumps protons into the intermembrane space, and ATP synthase uses the "
    "resulting gradient to phosphorylate ADP. Cells with high energy demands, such as heart muscle and "
    "neurons, contain thousands of mitochondria each. Mitochondria carry their own small circular genome, "
    "inherited from the mother, which supports the theory that they descend from free-living bacteria "
    "engulfed by an ancestral cell more than a billion years ago.",
    "The Treaty of Westphalia (1648) ended the Thirty Years' War and is often cited as the origin of the "
    "modern system of sovereign states. Negotiations took place in Osnabrück and Münster over several "
    "years; the settlement recognised the independence of the Dutch Republic and the Swiss Confederation, "
    "reshaped the borders of the Holy Roman Empire, and confirmed the right of rulers to choose the "
    "religion of their territories, extending it to Calvinism.",
    "SELECT customer_id, SUM(amount) AS total FROM orders WHERE created_at >= '2024-01-01' GROUP BY "
    "customer_id HAVING SUM(amount) > 1000 ORDER BY total DESC LIMIT 20;",
    "To replace a bicycle inner tube, release the brake, remove the wheel, lever one side of the tyre off "
    "the rim, pull out the old tube, check the inside of the tyre for thorns or glass, insert a slightly "
    "inflated new tube, work the tyre bead back on with your thumbs, and inflate to the pressure printed "
    "on the sidewall.",
    "Symptoms: fever 38.9 °C, dry cough for 6 days, SpO2 94% on room air. Plan: chest X-ray, CBC, CRP; "
    "review in 48 h.",
    "The Great Barrier Reef stretches over 2,300 kilometres along the coast of Queensland. It is made of "
    "nearly 3,000 individual reefs and 900 islands and is the largest structure built by living organisms. "
    "Rising sea temperatures have caused mass bleaching events in 1998, 2002, 2016, 2017, 2020 and 2022, "
    "when corals expel the algae living in their tissues and turn white; reefs can recover if the water "
    "cools in time, but repeated events leave less time for recovery.",
    "Compound interest: an amount P invested at an annual rate r compounded n times a year grows to "
    "P(1 + r/n)^(nt) after t years; at 5% compounded monthly, $1,000 becomes about $1,647 in ten years.",
    "Shakespeare's Hamlet, written around 1600, follows the Danish prince's revenge on his uncle Claudius, "
    "who murdered Hamlet's father to take the throne and marry the queen, Gertrude.",
    "Kubernetes restarts a container when its liveness probe fails; a readiness probe only removes the pod "
    "from the service's endpoints until it passes again.",
    "Die Donau ist nach der Wolga der zweitlängste Fluss Europas und fließt durch zehn Länder.",
    "Les abeilles communiquent l'emplacement des fleurs par une danse en huit dont l'angle indique la "
    "direction par rapport au soleil.",
    "The 2008 financial crisis began in the US housing market. Mortgage lenders had issued loans to "
    "borrowers with weak credit, and banks packaged those loans into securities that were sold worldwide "
    "with high credit ratings. When house prices fell, defaults rose, the securities lost value, and "
    "institutions that held them or had insured them, such as Lehman Brothers and AIG, faced collapse. "
    "Credit markets froze, governments and central banks intervened with bailouts, guarantees and "
    "interest rate cuts, and the world economy entered its deepest recession since the 1930s. Regulators "
    "later raised capital requirements and introduced stress tests for large banks.",
    "Deep-sea anglerfish lure prey with a glowing fin ray lit by symbiotic bacteria.",
    "Tip: press Ctrl+Shift+P, type 'Reload Window' and hit Enter.",
    "Penguins live almost exclusively in the Southern Hemisphere; only the Galápagos penguin crosses north "
    "of the equator.",
    "A transformer encoder layer applies multi-head self-attention, adds the input back (a residual "
    "connection), normalises, then applies a two-layer feed-forward network with a GELU activation, "
    "again followed by a residual connection and layer normalisation. Stacking six such layers with a "
    "hidden size of 384 and twelve heads gives a model small enough to embed a query in a few "
    "milliseconds on one CPU core while keeping most of the quality of much larger models on retrieval "
    "benchmarks such as MS MARCO and BEIR, where passages are compared with queries by the cosine of "
    "their mean-pooled embeddings.",
)

PROBE_PASSAGES: tuple[str, ...] = _PASSAGES
PROBE_TEXTS: tuple[str, ...] = PROBE_QUERIES + PROBE_PASSAGES

assert len(PROBE_QUERIES) == 24 and len(PROBE_PASSAGES) == 40, (len(PROBE_QUERIES), len(PROBE_PASSAGES))
