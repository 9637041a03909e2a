// Reads BPMN and DMN files with the moddle parsers bpmn.io's modelers import with, and
// prints one JSON line per file: the import warnings, and the flow elements no diagram
// element draws (they would not render).
import { readFileSync } from "node:fs";
import { BpmnModdle } from "bpmn-moddle";
import { DmnModdle } from "dmn-moddle";

async function readBpmn(file) {
  const { rootElement, warnings } = await new BpmnModdle().fromXML(readFileSync(file, "utf8"));
  const drawn = new Set();
  for (const diagram of rootElement.diagrams || []) {
    for (const shape of diagram.plane.planeElement || []) {
      if (shape.bpmnElement) drawn.add(shape.bpmnElement.id);
    }
  }
  const undrawn = [];
  for (const process of rootElement.rootElements.filter((e) => e.$type === "bpmn:Process")) {
    for (const element of process.flowElements || []) {
      if (!drawn.has(element.id)) undrawn.push(element.id);
    }
  }
  const processes = rootElement.rootElements
    .filter((e) => e.$type === "bpmn:Process")
    .map((p) => ({ id: p.id, elements: (p.flowElements || []).length }));
  return { warnings: warnings.map((w) => w.message), undrawn, processes };
}

async function readDmn(file) {
  const { rootElement, warnings } = await new DmnModdle().fromXML(readFileSync(file, "utf8"));
  const decisions = (rootElement.drgElement || []).filter((e) => e.$type === "dmn:Decision");
  const drawn = new Set(
    (rootElement.dmnDI?.diagrams || []).flatMap((d) =>
      (d.diagramElements || []).map((s) => s.dmnElementRef?.id),
    ),
  );
  return {
    warnings: warnings.map((w) => w.message),
    undrawn: decisions.filter((d) => !drawn.has(d.id)).map((d) => d.id),
    decisions: decisions.map((d) => ({
      id: d.id,
      inputs: d.decisionLogic.input.length,
      rules: d.decisionLogic.rule.length,
    })),
  };
}

for (const file of process.argv.slice(2)) {
  const result = file.endsWith(".dmn") ? await readDmn(file) : await readBpmn(file);
  console.log(JSON.stringify({ file, ...result }));
}
