from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models.emails import Audience, StepKind
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('encore', '0002_registration')]

    initial = False

    operations = [
        ops.CreateModel(
            name='EmailStep',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('webinar', fields.ForeignKeyField('encore.Webinar', source_field='webinar_id', db_constraint=True, to_field='id', related_name='email_steps', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='REMINDER: reminder\nSTARTING: starting\nFOLLOW_UP: follow_up', enum_type=StepKind, max_length=16)),
                ('minutes', fields.IntField(default=0)),
                ('audience', fields.CharEnumField(default=Audience.EVERYONE, description='EVERYONE: everyone\nATTENDED: attended\nLEFT_EARLY: left_early\nMISSED: missed\nCLICKED_OFFER: clicked_offer', enum_type=Audience, max_length=16)),
                ('enabled', fields.BooleanField(default=True)),
                ('subject', fields.CharField(max_length=200)),
                ('body', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'email_step', 'app': 'encore', 'pk_attr': 'id', 'table_description': 'One email of a webinar\'s sequence: a reminder, "starting now" or a follow-up.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Registrant',
            name='plan_state',
            field=fields.SmallIntField(default=1, db_index=True),
        ),
        ops.AddField(
            model_name='Webinar',
            name='emails_configured',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Webinar',
            name='late_reminders',
            field=fields.CharField(default='skip', max_length=16),
        ),
    ]
