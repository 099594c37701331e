"""One DICOM study per run: the UIDs and the modules every object we write shares.

A run (``us --dicom``, ``fluoro --dicom``, ``contrast --dicom``, ``simulate --dicom``)
makes one :class:`Study` and writes every object of the run into it: the same Study
Instance UID, Frame of Reference UID, patient (the phantom's description) and study
date/time; each object its own series. :func:`base_dataset` fills the Patient, General
Study, General Series, General Equipment, Frame of Reference and SOP Common modules;
:func:`write_dataset` writes a file atomically, as a DICOM Part 10 file.

UIDs are new for every run (``pydicom.uid.generate_uid``: the 2.25 UUID form), as
DICOM requires: a rerun with the same seed makes the same pixels but a new study.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from needleguide import __version__ as _version

MANUFACTURER = "needleguide"
MODEL = "needleguide simulator"
INSTITUTION = "needleguide virtual patients"


@dataclasses.dataclass(frozen=True)
class Study:
    """What every object of one run shares. ``patient_name`` is the phantom's description
    (DICOM PN: ``family^given``), ``patient_id`` a short id of it; ``when`` the study
    date and time (UTC)."""

    study_uid: str
    frame_of_reference_uid: str
    patient_name: str
    patient_id: str
    description: str
    when: _dt.datetime
    study_id: str = "1"
    accession: str = ""

    @property
    def date(self) -> str:
        return self.when.strftime("%Y%m%d")

    @property
    def time(self) -> str:
        return self.when.strftime("%H%M%S")


def new_study(description: str, patient_name: str, patient_id: str,
              when: _dt.datetime | None = None) -> Study:
    """A new study (fresh UIDs). ``description``: e.g. "lumbar phantom, BMI 24, seed 0"
    (Study Description); ``patient_name``: e.g. "Phantom^Lumbar BMI 24 seed 0"
    (at most 64 characters per component group); ``patient_id``: at most 64 characters."""
    return Study(study_uid=generate_uid(), frame_of_reference_uid=generate_uid(),
                 patient_name=patient_name[:64], patient_id=patient_id[:64],
                 description=description[:64],
                 when=(when or _dt.datetime.now(_dt.UTC)).replace(microsecond=0))


def phantom_study(region: str, bmi: float, seed: int, what: str = "") -> Study:
    """The study of a run on the built-in phantom: the patient is the phantom
    (``Phantom^<Region> BMI <bmi> seed <seed>``)."""
    name = f"Phantom^{region.capitalize()} BMI {bmi:g} seed {seed}"
    desc = f"{region} phantom, BMI {bmi:g}, seed {seed}" + (f": {what}" if what else "")
    return new_study(desc, name, f"NG-{region}-{bmi:g}-{seed}")


def base_dataset(study: Study, sop_class_uid: str, modality: str, series_uid: str,
                 series_number: int, instance_number: int = 1,
                 series_description: str = "") -> Dataset:
    """A dataset with file meta and the modules every object of the study shares.
    The caller adds the IOD's own modules."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"NEEDLEGUIDE_{_version}"[:16]
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = study.date, study.time
    # Patient
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    # General Study
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate, ds.StudyTime = study.date, study.time
    ds.ReferringPhysicianName = ""
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession
    ds.StudyDescription = study.description
    # General Series
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = int(series_number)
    ds.SeriesDate, ds.SeriesTime = study.date, study.time
    if series_description:
        ds.SeriesDescription = series_description[:64]
    # General Equipment
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL
    ds.InstitutionName = INSTITUTION
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = _version
    ds.InstanceNumber = int(instance_number)
    return ds


def add_frame_of_reference(ds: Dataset, study: Study) -> None:
    """Frame of Reference module (the patient RAS frame of the run)."""
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""


def write_dataset(path: Path, ds: Dataset) -> Path:
    """Write ``ds`` as a DICOM Part 10 file, atomically (temp file, then rename)."""
    from needleguide.atomic import atomic_path

    with atomic_path(Path(path)) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(path)


__all__ = ["Study", "add_frame_of_reference", "base_dataset", "new_study", "phantom_study",
           "write_dataset"]
